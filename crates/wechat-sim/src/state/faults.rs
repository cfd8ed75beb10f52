//! Fault injection: the rules a test sets, which call each matches, and what a fault answers.

use std::collections::VecDeque;

use serde_json::json;

use super::{Answer, State, errcode};
use crate::model::{Fault, FaultRule, SimError};

const MAX_FAULT_RULES: usize = 1_000;
const MAX_FAULTS_PER_RULE: usize = 1_000;
/// The longest fault delay.
pub(crate) const MAX_DELAY_MS: u64 = 60_000;

#[derive(Debug)]
pub(super) struct ActiveRule {
    rule: FaultRule,
    /// For a queue: the faults left. For a sticky rule: unused (the rule's list cycles).
    queue: VecDeque<Fault>,
    next: usize,
}

/// What a fault rule can match a call on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallKey<'a> {
    pub(crate) path: &'static str,
    pub(crate) appid: Option<&'a str>,
    pub(crate) code: Option<&'a str>,
}

impl State {
    pub(crate) fn add_fault_rule(&mut self, rule: FaultRule) -> Result<(), SimError> {
        if rule.faults.is_empty() {
            return Err(SimError::InvalidInput(
                "a fault rule needs at least one fault".into(),
            ));
        }
        if rule.faults.len() > MAX_FAULTS_PER_RULE {
            return Err(SimError::Capacity("faults in one rule"));
        }
        if self.rules.len() >= MAX_FAULT_RULES {
            return Err(SimError::Capacity("fault rules"));
        }
        for fault in &rule.faults {
            if let Fault::Delay { ms } = fault
                && *ms > MAX_DELAY_MS
            {
                return Err(SimError::InvalidInput(format!(
                    "a delay is at most {MAX_DELAY_MS} ms"
                )));
            }
        }
        self.rules.push(ActiveRule {
            queue: rule.faults.iter().cloned().collect(),
            rule,
            next: 0,
        });
        Ok(())
    }

    pub(crate) fn clear_faults(&mut self) {
        self.rules.clear();
    }

    /// The next fault for a call, if any rule matches: code rules first, then app rules, then
    /// rules for every call; queued faults are consumed.
    pub(crate) fn take_fault(&mut self, key: &CallKey<'_>) -> Option<Fault> {
        let matches = |rule: &FaultRule| {
            let target = &rule.target;
            target.appid.as_deref().is_none_or(|a| Some(a) == key.appid)
                && target.code.as_deref().is_none_or(|c| Some(c) == key.code)
                && target.path.as_deref().is_none_or(|p| p == key.path)
        };
        let specificity = |rule: &FaultRule| {
            if rule.target.code.is_some() {
                0
            } else if rule.target.appid.is_some() {
                1
            } else {
                2
            }
        };
        let index = (0..3).find_map(|level| {
            self.rules
                .iter()
                .position(|r| specificity(&r.rule) == level && matches(&r.rule))
        })?;
        let active = self.rules.get_mut(index)?;
        if active.rule.sticky {
            let faults = &active.rule.faults;
            let fault = faults.get(active.next % faults.len().max(1)).cloned();
            active.next = active.next.wrapping_add(1);
            fault
        } else {
            let fault = active.queue.pop_front();
            if active.queue.is_empty() {
                self.rules.remove(index);
            }
            fault
        }
    }

    /// The answer for a fault (not [`Fault::Delay`], which the caller plays by waiting).
    pub(crate) fn fault_answer(&mut self, fault: &Fault, key: &CallKey<'_>) -> Answer {
        match fault {
            Fault::SystemBusy { consume_code } => {
                if *consume_code {
                    self.consume_code_if_valid(key);
                }
                errcode(-1, "system error")
            }
            Fault::RateLimited => errcode(
                45011,
                "api minute-quota reach limit mustslower retry next minute",
            ),
            Fault::HighRisk => errcode(40226, "code blocked"),
            Fault::InvalidCredential => errcode(40125, "invalid appsecret"),
            Fault::Errcode {
                errcode: code,
                errmsg,
            } => Answer::Json(json!({
                "errcode": code,
                "errmsg": errmsg,
            })),
            Fault::NonJson502 => Answer::Raw {
                status: 502,
                content_type: "text/html",
                body: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                       <center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
                    .into(),
            },
            Fault::Http500 => Answer::Raw {
                status: 500,
                content_type: "text/plain",
                body: "Internal Server Error".into(),
            },
            Fault::DropConnection => Answer::Drop,
            // The caller waits, then asks for the normal answer.
            Fault::Delay { .. } => errcode(-1, "system error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::state_with_app;
    use super::*;
    use crate::{CODE2SESSION_PATH, UnionidPolicy};

    #[test]
    fn sticky_rules_cycle_and_queues_drain() {
        let mut state = state_with_app(UnionidPolicy::Always);
        state
            .add_fault_rule(FaultRule {
                target: crate::FaultTarget::any(),
                faults: vec![Fault::RateLimited, Fault::HighRisk],
                sticky: true,
            })
            .expect("rule");
        state
            .add_fault_rule(FaultRule {
                target: crate::FaultTarget::app("wx1"),
                faults: vec![Fault::Http500],
                sticky: false,
            })
            .expect("rule");
        let q = CallKey {
            path: CODE2SESSION_PATH,
            appid: Some("wx1"),
            code: Some("c"),
        };
        assert_eq!(state.take_fault(&q), Some(Fault::Http500));
        assert_eq!(state.take_fault(&q), Some(Fault::RateLimited));
        assert_eq!(state.take_fault(&q), Some(Fault::HighRisk));
        assert_eq!(state.take_fault(&q), Some(Fault::RateLimited));
        state.clear_faults();
        assert_eq!(state.take_fault(&q), None);
    }

    #[test]
    fn path_targets_spare_other_endpoints() {
        let mut state = state_with_app(UnionidPolicy::Always);
        state
            .add_fault_rule(FaultRule {
                target: crate::FaultTarget::app("wx1").at_path(crate::STABLE_TOKEN_PATH),
                faults: vec![Fault::RateLimited],
                sticky: true,
            })
            .expect("rule");
        let mut key = CallKey {
            path: CODE2SESSION_PATH,
            appid: Some("wx1"),
            code: None,
        };
        assert_eq!(state.take_fault(&key), None);
        key.path = crate::STABLE_TOKEN_PATH;
        assert_eq!(state.take_fault(&key), Some(Fault::RateLimited));
    }
}
