//! The lifecycle as one pure function: may this action move a proposal in this state,
//! and where to?
//!
//! ```text
//! PENDING_REVIEW --approve (enough distinct reviewers, on the digest they saw)--> APPROVED
//! PENDING_REVIEW --reject--> REJECTED
//! APPROVED --claim + released (stored digest == approved digest)--> RELEASED
//! RELEASED --pull request merged--> APPLIED | --closed unmerged--> FAILED
//! PENDING_REVIEW | APPROVED (unclaimed) --past expires_at--> EXPIRED
//! ```
//!
//! Only humans approve, reject and release (the access matrix and storage decide who is
//! human); the outcome comes from the customer's own flow (GitHub), expiry from the clock.
//! There is no edit: changed content is a new proposal with a new digest.

use warden_proto::storage::v1::ProposalStatus;

/// What the decision needs to know about a proposal, as plain data.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub status: ProposalStatus,
    /// The digest of the content as stored now (recomputed from it).
    pub digest: &'a str,
    /// The digest the approving reviewers saw; empty until approved.
    pub approved_digest: &'a str,
    /// Distinct reviewers who approved so far.
    pub approvals: &'a [String],
    /// Distinct approvals the tenant requires (at least one).
    pub required: u32,
    pub expires_at_ms: i64,
    pub now_ms: i64,
    /// A release is in progress (claimed by a gateway).
    pub claimed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<'a> {
    Review {
        reviewer: &'a str,
        approve: bool,
        /// The digest the reviewer saw.
        seen_digest: &'a str,
    },
    /// A human asks to release; `expected_digest` empty: the approved one.
    ClaimRelease {
        expected_digest: &'a str,
    },
    /// The claimed release reached the customer.
    Released,
    /// The claimed release failed before anything was created.
    ReleaseAbandoned,
    /// The customer's flow reported the released change merged (or closed unmerged).
    Outcome {
        merged: bool,
    },
    Expire,
}

/// The move an action makes: the new status and the audit reason that records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub to: ProposalStatus,
    pub reason: &'static str,
    /// The reviewer's approval is recorded (counts toward `required`).
    pub approval: bool,
    /// The release claim is taken (true) or given back (false); `None`: unchanged.
    pub claim: Option<bool>,
}

/// Why an action cannot move the proposal. Every refusal is a failed precondition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Past its expiry: record EXPIRED (with [`Action::Expire`]) and refuse.
    #[error("the proposal expired without being reviewed and released in time")]
    Expired,
    #[error(
        "the proposal's content has digest {actual}, not {expected}: review or release what is stored, or propose again"
    )]
    DigestMismatch { expected: String, actual: String },
    #[error("the proposal is {0}; {1}")]
    WrongState(&'static str, &'static str),
    #[error("{0} already approved this proposal; it needs distinct reviewers")]
    AlreadyApproved(String),
    #[error("a release of this proposal is already in progress")]
    ReleaseInProgress,
}

fn name(s: ProposalStatus) -> &'static str {
    s.as_str_name()
        .trim_start_matches("PROPOSAL_STATUS_")
        .trim_end_matches('_')
}

const fn step(to: ProposalStatus, reason: &'static str) -> Step {
    Step {
        to,
        reason,
        approval: false,
        claim: None,
    }
}

fn expired(f: &Facts<'_>) -> bool {
    matches!(
        f.status,
        ProposalStatus::PendingReview | ProposalStatus::Approved
    ) && !f.claimed
        && f.expires_at_ms > 0
        && f.now_ms >= f.expires_at_ms
}

fn same(expected: &str, actual: &str) -> Result<(), Refusal> {
    if expected == actual {
        Ok(())
    } else {
        Err(Refusal::DigestMismatch {
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        })
    }
}

/// Decides one action. Pure: the caller records the step (audited first) or the refusal.
pub fn decide(f: &Facts<'_>, action: &Action<'_>) -> Result<Step, Refusal> {
    use ProposalStatus as S;
    if *action == Action::Expire {
        return if expired(f) {
            Ok(step(S::Expired, "PROPOSAL_EXPIRED"))
        } else {
            Err(Refusal::WrongState(
                name(f.status),
                "it is not due to expire",
            ))
        };
    }
    if expired(f) {
        return Err(Refusal::Expired);
    }
    match action {
        Action::Review {
            reviewer,
            approve,
            seen_digest,
        } => {
            if f.status != S::PendingReview {
                return Err(Refusal::WrongState(
                    name(f.status),
                    "only a proposal pending review can be reviewed",
                ));
            }
            same(seen_digest, f.digest)?;
            if !approve {
                return Ok(step(S::Rejected, "PROPOSAL_REJECTED"));
            }
            if f.approvals.iter().any(|a| a == reviewer) {
                return Err(Refusal::AlreadyApproved((*reviewer).to_owned()));
            }
            let count = f.approvals.len() as u32 + 1;
            let (to, reason) = if count >= f.required.max(1) {
                (S::Approved, "PROPOSAL_APPROVED")
            } else {
                (S::PendingReview, "PROPOSAL_APPROVAL_RECORDED")
            };
            Ok(Step {
                approval: true,
                ..step(to, reason)
            })
        }
        Action::ClaimRelease { expected_digest } => {
            if f.status != S::Approved {
                return Err(Refusal::WrongState(
                    name(f.status),
                    "only an approved proposal can be released, and only once",
                ));
            }
            if f.claimed {
                return Err(Refusal::ReleaseInProgress);
            }
            if !expected_digest.is_empty() {
                same(expected_digest, f.approved_digest)?;
            }
            same(f.approved_digest, f.digest)?;
            Ok(Step {
                claim: Some(true),
                ..step(S::Approved, "PROPOSAL_RELEASE_STARTED")
            })
        }
        Action::Released | Action::ReleaseAbandoned => {
            if f.status != S::Approved || !f.claimed {
                return Err(Refusal::WrongState(
                    name(f.status),
                    "no release of it is in progress",
                ));
            }
            same(f.approved_digest, f.digest)?;
            Ok(if *action == Action::Released {
                Step {
                    claim: Some(false),
                    ..step(S::Released, "PROPOSAL_RELEASED")
                }
            } else {
                Step {
                    claim: Some(false),
                    ..step(S::Approved, "PROPOSAL_RELEASE_FAILED")
                }
            })
        }
        Action::Outcome { merged } => {
            if f.status != S::Released {
                return Err(Refusal::WrongState(
                    name(f.status),
                    "only a released proposal can be applied or fail",
                ));
            }
            Ok(if *merged {
                step(S::Applied, "PROPOSAL_APPLIED")
            } else {
                step(S::Failed, "PROPOSAL_FAILED")
            })
        }
        Action::Expire => Err(Refusal::WrongState(name(f.status), "unreachable")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProposalStatus as S;

    fn facts<'a>(status: S, approvals: &'a [String]) -> Facts<'a> {
        Facts {
            status,
            digest: "sha256:a",
            approved_digest: if matches!(status, S::Approved | S::Released) {
                "sha256:a"
            } else {
                ""
            },
            approvals,
            required: 1,
            expires_at_ms: 2_000,
            now_ms: 1_000,
            claimed: false,
        }
    }

    fn review<'a>(who: &'a str, approve: bool, seen: &'a str) -> Action<'a> {
        Action::Review {
            reviewer: who,
            approve,
            seen_digest: seen,
        }
    }

    #[test]
    fn the_happy_path_is_review_claim_release_outcome() {
        let none: Vec<String> = vec![];
        let s = decide(
            &facts(S::PendingReview, &none),
            &review("reviewer/a", true, "sha256:a"),
        )
        .unwrap();
        assert_eq!(
            (s.to, s.reason, s.approval),
            (S::Approved, "PROPOSAL_APPROVED", true)
        );
        let claim = decide(
            &facts(S::Approved, &none),
            &Action::ClaimRelease {
                expected_digest: "",
            },
        )
        .unwrap();
        assert_eq!(claim.claim, Some(true));
        let claimed = Facts {
            claimed: true,
            ..facts(S::Approved, &none)
        };
        assert_eq!(decide(&claimed, &Action::Released).unwrap().to, S::Released);
        assert_eq!(
            decide(&claimed, &Action::ReleaseAbandoned).unwrap(),
            Step {
                to: S::Approved,
                reason: "PROPOSAL_RELEASE_FAILED",
                approval: false,
                claim: Some(false)
            }
        );
        let out = |merged| decide(&facts(S::Released, &none), &Action::Outcome { merged });
        assert_eq!(out(true).unwrap().to, S::Applied);
        assert_eq!(out(false).unwrap().to, S::Failed);
    }

    #[test]
    fn a_review_of_another_digest_is_refused() {
        let none: Vec<String> = vec![];
        assert!(matches!(
            decide(
                &facts(S::PendingReview, &none),
                &review("reviewer/a", true, "sha256:b")
            ),
            Err(Refusal::DigestMismatch { .. })
        ));
    }

    #[test]
    fn two_required_reviewers_must_be_distinct() {
        let one = vec!["reviewer/a".to_owned()];
        let f = Facts {
            required: 2,
            ..facts(S::PendingReview, &[])
        };
        let first = decide(&f, &review("reviewer/a", true, "sha256:a")).unwrap();
        assert_eq!(first.to, S::PendingReview);
        let f = Facts {
            required: 2,
            ..facts(S::PendingReview, &one)
        };
        assert!(matches!(
            decide(&f, &review("reviewer/a", true, "sha256:a")),
            Err(Refusal::AlreadyApproved(_))
        ));
        assert_eq!(
            decide(&f, &review("reviewer/b", true, "sha256:a"))
                .unwrap()
                .to,
            S::Approved
        );
        assert_eq!(
            decide(&f, &review("reviewer/b", false, "sha256:a"))
                .unwrap()
                .to,
            S::Rejected
        );
    }

    #[test]
    fn release_needs_approval_the_approved_digest_and_happens_once() {
        let none: Vec<String> = vec![];
        let claim = Action::ClaimRelease {
            expected_digest: "",
        };
        for status in [
            S::PendingReview,
            S::Rejected,
            S::Released,
            S::Applied,
            S::Failed,
            S::Expired,
        ] {
            assert!(
                matches!(
                    decide(&facts(status, &none), &claim),
                    Err(Refusal::WrongState(..))
                ),
                "{status:?}"
            );
        }
        let changed = Facts {
            digest: "sha256:b",
            ..facts(S::Approved, &none)
        };
        assert!(matches!(
            decide(&changed, &claim),
            Err(Refusal::DigestMismatch { .. })
        ));
        let other = Action::ClaimRelease {
            expected_digest: "sha256:c",
        };
        assert!(matches!(
            decide(&facts(S::Approved, &none), &other),
            Err(Refusal::DigestMismatch { .. })
        ));
        let claimed = Facts {
            claimed: true,
            ..facts(S::Approved, &none)
        };
        assert_eq!(decide(&claimed, &claim), Err(Refusal::ReleaseInProgress));
    }

    #[test]
    fn past_expiry_nothing_but_expiry_moves_a_pending_or_approved_proposal() {
        let none: Vec<String> = vec![];
        for status in [S::PendingReview, S::Approved] {
            let late = Facts {
                now_ms: 2_000,
                ..facts(status, &none)
            };
            assert_eq!(
                decide(&late, &review("reviewer/a", true, "sha256:a")),
                Err(Refusal::Expired)
            );
            assert_eq!(
                decide(
                    &late,
                    &Action::ClaimRelease {
                        expected_digest: ""
                    }
                ),
                Err(Refusal::Expired)
            );
            assert_eq!(decide(&late, &Action::Expire).unwrap().to, S::Expired);
            assert!(
                decide(&facts(status, &none), &Action::Expire).is_err(),
                "not yet due"
            );
        }
        let released_late = Facts {
            now_ms: 9_000,
            ..facts(S::Released, &none)
        };
        assert!(decide(&released_late, &Action::Expire).is_err());
        assert!(decide(&released_late, &Action::Outcome { merged: true }).is_ok());
    }
}
