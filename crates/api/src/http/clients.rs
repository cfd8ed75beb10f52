//! Who calls the internal API.

/// The internal API client a request was authenticated as; the internal auth middleware puts it
/// in the request's extensions. Its name is the `actor` of the events support actions write.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client's name.
    pub name: String,
}
