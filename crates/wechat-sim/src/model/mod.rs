//! The simulator's public data types: what the control API takes and gives, one idea a file.

mod answers;
mod apps;
mod calls;
mod endpoints;
mod error;
mod faults;

pub use answers::*;
pub use apps::*;
pub use calls::*;
pub use endpoints::*;
pub use error::*;
pub use faults::*;
