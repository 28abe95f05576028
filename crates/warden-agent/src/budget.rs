//! A run's hard budget, enforced outside the model: what it may spend (steps, tokens in
//! and out, wall time, tool calls, bytes read per data type) and what to do as it runs
//! out. Near the end the model is asked for its final answer with its tools withdrawn,
//! so a run ends with a finding rather than mid-thought; past the end it stops.
//!
//! Pure: [`next`] and [`tool_bytes_allowed`] decide over plain numbers.

use std::collections::BTreeMap;
use std::time::Duration;

use warden_proto::common::v1::RunBudget;

/// The limits of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_steps: u32,
    pub max_wall: Duration,
    pub max_tool_calls: u32,
    pub max_input_tokens: u64,
    pub max_output_tokens: u64,
    pub max_bytes_per_data_type: u64,
    pub model_context_tokens: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_steps: 8,
            max_wall: Duration::from_secs(300),
            max_tool_calls: 24,
            max_input_tokens: 400_000,
            max_output_tokens: 16_000,
            max_bytes_per_data_type: 256 * 1024,
            model_context_tokens: 128_000,
        }
    }
}

/// `tenant` where it is set and lower, else `platform`: a tenant can only tighten.
fn lower<T: Copy + Ord + Default>(platform: T, tenant: T) -> T {
    if tenant == T::default() {
        platform
    } else {
        platform.min(tenant)
    }
}

impl Budget {
    /// This budget lowered by the tenant's own limits (unset fields keep the platform's).
    pub fn lowered_by(&self, tenant: Option<&RunBudget>) -> Budget {
        let Some(t) = tenant else { return *self };
        Budget {
            max_steps: lower(self.max_steps, t.max_steps),
            max_wall: Duration::from_millis(lower(self.max_wall.as_millis() as u64, t.max_wall_ms)),
            max_tool_calls: lower(self.max_tool_calls, t.max_tool_calls),
            max_input_tokens: lower(self.max_input_tokens, t.max_input_tokens),
            max_output_tokens: lower(self.max_output_tokens, t.max_output_tokens),
            max_bytes_per_data_type: lower(self.max_bytes_per_data_type, t.max_bytes_per_data_type),
            model_context_tokens: lower(self.model_context_tokens, t.model_context_tokens),
        }
    }

    pub fn to_proto(self) -> RunBudget {
        RunBudget {
            max_steps: self.max_steps,
            max_wall_ms: self.max_wall.as_millis() as u64,
            max_tool_calls: self.max_tool_calls,
            max_input_tokens: self.max_input_tokens,
            max_output_tokens: self.max_output_tokens,
            max_bytes_per_data_type: self.max_bytes_per_data_type,
            model_context_tokens: self.model_context_tokens,
        }
    }

    /// The budget a run was created with (a run stored before budgets: the default).
    pub fn from_proto(p: Option<&RunBudget>) -> Budget {
        match p {
            Some(p) if p.max_steps > 0 => Budget {
                max_steps: p.max_steps,
                max_wall: Duration::from_millis(p.max_wall_ms),
                max_tool_calls: p.max_tool_calls,
                max_input_tokens: p.max_input_tokens,
                max_output_tokens: p.max_output_tokens,
                max_bytes_per_data_type: p.max_bytes_per_data_type,
                model_context_tokens: p.model_context_tokens,
            },
            _ => Budget::default(),
        }
    }
}

/// What a run has spent so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spent {
    /// Model calls made.
    pub steps: u32,
    pub wall: Duration,
    pub tool_calls: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Bytes of tool results read, by data type name.
    pub bytes_read: BTreeMap<String, u64>,
}

/// What the next step may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A normal step, with tools.
    Continue,
    /// One last model call, tools withdrawn, asking for the final answer; the reason
    /// says which budget is nearly used up.
    FinalAnswer(String),
    /// No more model calls: the reason is the run's status reason.
    Stop(String),
}

/// The share of a token or time budget after which the model is asked to conclude.
const CONCLUDE_AT: f64 = 0.85;

fn near(spent: u64, max: u64) -> bool {
    spent as f64 >= max as f64 * CONCLUDE_AT
}

/// Decides the next step from the budget and what was spent.
pub fn next(b: &Budget, s: &Spent) -> Next {
    if s.steps >= b.max_steps {
        return Next::Stop(format!(
            "step budget of {} model calls used up",
            b.max_steps
        ));
    }
    if s.wall >= b.max_wall {
        return Next::Stop(format!(
            "wall-time budget of {} s used up",
            b.max_wall.as_secs()
        ));
    }
    if s.input_tokens >= b.max_input_tokens {
        return Next::Stop(format!(
            "input-token budget of {} used up ({} sent)",
            b.max_input_tokens, s.input_tokens
        ));
    }
    if s.output_tokens >= b.max_output_tokens {
        return Next::Stop(format!(
            "output-token budget of {} used up ({} received)",
            b.max_output_tokens, s.output_tokens
        ));
    }
    if s.steps + 1 >= b.max_steps {
        return Next::FinalAnswer(format!("this is the last of {} model calls", b.max_steps));
    }
    if s.tool_calls >= b.max_tool_calls {
        return Next::FinalAnswer(format!(
            "the budget of {} tool calls is used up",
            b.max_tool_calls
        ));
    }
    if near(s.input_tokens, b.max_input_tokens) {
        return Next::FinalAnswer("the input-token budget is nearly used up".into());
    }
    if near(s.output_tokens, b.max_output_tokens) {
        return Next::FinalAnswer("the output-token budget is nearly used up".into());
    }
    if near(s.wall.as_millis() as u64, b.max_wall.as_millis() as u64) {
        return Next::FinalAnswer("the wall-time budget is nearly used up".into());
    }
    Next::Continue
}

/// May a tool result of `bytes` of `data_type` be read? `Err` with the reason for the model.
pub fn tool_bytes_allowed(
    b: &Budget,
    s: &Spent,
    data_type: &str,
    bytes: u64,
) -> Result<(), String> {
    let read = s.bytes_read.get(data_type).copied().unwrap_or(0);
    if read + bytes > b.max_bytes_per_data_type {
        return Err(format!(
            "this run's budget for {data_type} is {} bytes and {read} are read; this result of {bytes} bytes does not fit. Conclude from what you have, or ask for much less",
            b.max_bytes_per_data_type
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spent(steps: u32) -> Spent {
        Spent {
            steps,
            ..Default::default()
        }
    }

    #[test]
    fn the_last_step_asks_for_the_answer_and_past_it_the_run_stops() {
        let b = Budget {
            max_steps: 3,
            ..Default::default()
        };
        assert_eq!(next(&b, &spent(0)), Next::Continue);
        assert_eq!(next(&b, &spent(1)), Next::Continue);
        assert!(matches!(next(&b, &spent(2)), Next::FinalAnswer(r) if r.contains("last of 3")));
        assert!(matches!(next(&b, &spent(3)), Next::Stop(r) if r.contains("step budget of 3")));
    }

    #[test]
    fn tokens_time_and_tool_calls_each_end_a_run() {
        let b = Budget::default();
        let mut s = spent(1);
        s.input_tokens = b.max_input_tokens * 9 / 10;
        assert!(matches!(next(&b, &s), Next::FinalAnswer(r) if r.contains("input-token")));
        s.input_tokens = b.max_input_tokens;
        assert!(matches!(next(&b, &s), Next::Stop(r) if r.contains("input-token budget")));
        let mut s = spent(1);
        s.output_tokens = b.max_output_tokens;
        assert!(matches!(next(&b, &s), Next::Stop(r) if r.contains("output-token")));
        let mut s = spent(1);
        s.wall = b.max_wall;
        assert!(matches!(next(&b, &s), Next::Stop(r) if r.contains("wall-time")));
        let mut s = spent(1);
        s.tool_calls = b.max_tool_calls;
        assert!(matches!(next(&b, &s), Next::FinalAnswer(r) if r.contains("tool calls")));
    }

    #[test]
    fn bytes_are_budgeted_per_data_type() {
        let b = Budget {
            max_bytes_per_data_type: 100,
            ..Default::default()
        };
        let mut s = spent(1);
        s.bytes_read.insert("logs".into(), 80);
        assert!(tool_bytes_allowed(&b, &s, "logs", 20).is_ok());
        assert!(
            tool_bytes_allowed(&b, &s, "logs", 21)
                .unwrap_err()
                .contains("logs is 100 bytes")
        );
        assert!(tool_bytes_allowed(&b, &s, "metrics", 100).is_ok());
    }

    #[test]
    fn a_tenant_can_only_lower_the_platform_budget() {
        let platform = Budget::default();
        let tenant = RunBudget {
            max_steps: 3,
            max_tool_calls: 1000,
            ..Default::default()
        };
        let b = platform.lowered_by(Some(&tenant));
        assert_eq!(b.max_steps, 3);
        assert_eq!(b.max_tool_calls, platform.max_tool_calls, "cannot raise");
        assert_eq!(b.max_wall, platform.max_wall, "unset keeps the platform's");
        assert_eq!(Budget::from_proto(Some(&b.to_proto())), b);
    }
}
