//! The MCP tools: thin adapters that turn a tool call into a board [`Op`] for the caller's run
//! actor, and the result into `structuredContent` plus a one-line text.

use rmcp::handler::server::common::schema_for_output;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{ErrorData as McpError, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::json;

use crate::board::{Caller, Op, PlanInput, Reply, To, reply};
use crate::runs::{Command, RunError, Runs};
use orchestrator_proto::EventKind;

/// What a session reads first (Claude Code puts it in the model's context on every turn, so
/// each role gets only its own part: [`instructions`]); a client of no role gets all of it.
pub const INSTRUCTIONS: &str = "\
orchestratord coordinates the sessions building one feature.

Planner: study the codebase and the feature, then call submit_plan once; a refusal lists \
everything to fix.

Worker: get_task, do the task in your worktree, report_progress now and then, end with \
complete_task or fail_task, and stop.

Everyone: check read_messages between steps; escalate asks a human.";

/// The part of [`INSTRUCTIONS`] for `role`.
pub fn instructions(role: crate::board::Role) -> String {
    use crate::board::Role;
    let parts: Vec<&str> = INSTRUCTIONS.split("\n\n").collect();
    let own = match role {
        Role::Planner => vec![parts[0], parts[1]],
        Role::Worker => vec![parts[0], parts[2], parts[3]],
        Role::Reviewer => vec![parts[0], parts[3]],
    };
    own.join("\n\n")
}

/// The tools a caller may see and call: its role's, and `claim_task` only for a worker that
/// was not started for a task (a session opened through the API).
pub fn visible(caller: &Caller, tool: &str) -> bool {
    use crate::board::Role;
    match tool {
        "submit_plan" => caller.role == Role::Planner,
        "claim_task" => caller.role == Role::Worker && caller.dispatched.is_none(),
        "get_task" | "report_progress" | "complete_task" | "fail_task" => {
            caller.role == Role::Worker
        }
        _ => true,
    }
}

#[derive(Clone)]
pub struct OrchestratorMcp {
    runs: Runs,
    /// Completions refused because a verify command failed, per session.
    refusals: crate::engine::verify::Refusals,
    /// Built once per daemon: a service is made per request (stateless), the router not.
    tool_router: std::sync::Arc<rmcp::handler::server::router::tool::ToolRouter<Self>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ProgressArgs {
    /// Done since the last report, and next (a sentence or two).
    pub note: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CompleteArgs {
    /// What you changed and how you verified it.
    pub summary: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FailArgs {
    /// What you tried and what blocked you.
    pub reason: String,
    /// Another attempt could succeed.
    #[serde(default)]
    pub retryable: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SendArgs {
    /// A task id, "all" or "orchestrator".
    pub to: String,
    /// The message.
    pub body: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EscalateArgs {
    /// A question answerable on its own.
    pub question: String,
    /// What you considered.
    #[serde(default)]
    pub context: Option<String>,
    /// You cannot go on without the answer.
    #[serde(default)]
    pub blocking: bool,
}

impl OrchestratorMcp {
    pub fn new(runs: Runs) -> Self {
        Self {
            runs,
            refusals: Default::default(),
            tool_router: Self::router(),
        }
    }

    fn router() -> std::sync::Arc<rmcp::handler::server::router::tool::ToolRouter<Self>> {
        static ROUTER: std::sync::OnceLock<
            std::sync::Arc<rmcp::handler::server::router::tool::ToolRouter<OrchestratorMcp>>,
        > = std::sync::OnceLock::new();
        ROUTER
            .get_or_init(|| std::sync::Arc::new(Self::tool_router()))
            .clone()
    }

    async fn call(&self, parts: &http::request::Parts, op: Op) -> Result<CallToolResult, McpError> {
        let Some(caller) = parts.extensions.get::<Caller>().cloned() else {
            return Ok(refusal(
                "this request carries no session identity; the daemon gives each session a bearer token",
            ));
        };
        let run = caller.run.clone();
        if op.reads_only() && self.runs.is_live(&run) {
            return self.read(caller, op).await;
        }
        if matches!(op, Op::ReadMessages)
            && self.runs.is_live(&run)
            && let Some(none) = self.nothing_to_read(&caller).await
        {
            return none;
        }
        let result = self
            .runs
            .command(&run, |reply| Command::Board { caller, op, reply })
            .await;
        match result {
            Ok(Ok(answered)) => success(answered.reply, answered.unread),
            Ok(Err(refused)) => Ok(refusal(&refused)),
            Err(e @ RunError::Rejected { .. }) => Ok(refusal(&e.to_string())),
            Err(e) => {
                tracing::warn!(run = %run, cause = %e, "a board call failed");
                Err(McpError::internal_error(e.to_string(), None))
            }
        }
    }
}

impl OrchestratorMcp {
    /// A call that changes nothing, answered from the read connection (the last committed
    /// state) without waiting in the run's actor behind the writes.
    async fn read(&self, caller: Caller, op: Op) -> Result<CallToolResult, McpError> {
        let run = caller.run.clone();
        let applied = self
            .runs
            .db()
            .read(move |c| {
                let Some(row) = crate::store::runs::get_bare(c, &run)? else {
                    return Ok(Err(crate::board::BoardError::Refused(
                        "your run no longer exists".into(),
                    )));
                };
                Ok(crate::board::apply(c, &row, &caller, op))
            })
            .await;
        match applied {
            Ok(Ok(a)) => success(a.reply, a.unread),
            Ok(Err(crate::board::BoardError::Refused(m))) => Ok(refusal(&m)),
            Ok(Err(crate::board::BoardError::Store(e))) | Err(e) => {
                tracing::warn!(cause = %e, "a board read failed");
                Err(McpError::internal_error(e.to_string(), None))
            }
        }
    }
}

impl OrchestratorMcp {
    /// `read_messages` answered from the read connection when nothing waits for the caller
    /// (`board::nothing_to_read`); `None` sends it to the run's actor.
    async fn nothing_to_read(&self, caller: &Caller) -> Option<Result<CallToolResult, McpError>> {
        let caller = caller.clone();
        let read = self
            .runs
            .db()
            .read(move |c| crate::board::nothing_to_read(c, &caller))
            .await;
        match read {
            Ok(Some(a)) => Some(success(a.reply, a.unread)),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(cause = %e, "reading messages from the read connection failed; asking the run");
                None
            }
        }
    }
}

/// The reply as structured content plus a line of text — which, when messages wait for the
/// caller (a person's `orchestrate tell`, another worker's), says so, so that it reads them.
fn success(reply: Reply, unread: u32) -> Result<CallToolResult, McpError> {
    let mut v = serde_json::to_value(&reply)
        .map_err(|e| McpError::internal_error(format!("cannot serialise a reply: {e}"), None))?;
    let text = reply.next().map(str::to_owned).unwrap_or_else(|| {
        let s = v.to_string();
        if s.chars().count() > 300 {
            format!("{}…", s.chars().take(300).collect::<String>())
        } else {
            s
        }
    });
    // In the structured reply too: Codex shows the model only that.
    if unread > 0
        && !matches!(reply, Reply::Messages(_))
        && let Some(o) = v.as_object_mut()
    {
        o.insert("unread_messages".into(), json!(unread));
    }
    let text = match (unread, &reply) {
        (0, _) | (_, Reply::Messages(_)) => text,
        (n, _) => format!(
            "{text}\n\nYou have {} unread: call read_messages now and act on {}.",
            orchestrator_proto::words::count(u64::from(n), "message"),
            if n == 1 { "it" } else { "them" }
        ),
    };
    // Not `CallToolResult::structured`, which serialises the value once more for a text
    // that is replaced at once.
    let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
    r.structured_content = Some(v);
    Ok(r)
}

/// The session making the request, from its bearer token (`auth::bearer`).
fn caller_of(context: &rmcp::service::RequestContext<rmcp::RoleServer>) -> Option<&Caller> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Caller>())
}

fn refusal(message: &str) -> CallToolResult {
    let mut r = CallToolResult::structured_error(json!({ "error": message }));
    r.content = vec![ContentBlock::text(message.to_owned())];
    r
}

#[tool_router]
impl OrchestratorMcp {
    #[tool(
        description = "Take the next ready task, or hear why none is ready.",
        output_schema = schema_for_output::<reply::Claim>(),
    )]
    async fn claim_task(
        &self,
        Extension(p): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, McpError> {
        self.call(&p, Op::Claim).await
    }

    #[tool(
        description = "Your task's full brief, with what its dependencies produced.",
        output_schema = schema_for_output::<reply::MyTask>(),
    )]
    async fn get_task(
        &self,
        Extension(p): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, McpError> {
        self.call(&p, Op::MyTask).await
    }

    #[tool(
        description = "Record progress; also your heartbeat (every few minutes).",
        output_schema = schema_for_output::<reply::Progress>(),
    )]
    async fn report_progress(
        &self,
        Extension(p): Extension<http::request::Parts>,
        Parameters(a): Parameters<ProgressArgs>,
    ) -> Result<CallToolResult, McpError> {
        self.call(&p, Op::Progress { note: a.note }).await
    }

    #[tool(
        description = "Finish your task; its checks run before it is accepted.",
        output_schema = schema_for_output::<reply::Complete>(),
    )]
    async fn complete_task(
        &self,
        Extension(p): Extension<http::request::Parts>,
        Parameters(a): Parameters<CompleteArgs>,
    ) -> Result<CallToolResult, McpError> {
        use crate::engine::verify::{Verdict, verify};
        let verdict = match p.extensions.get::<Caller>() {
            Some(caller) => {
                let (db, cfg) = (self.runs.db(), self.runs.engine());
                verify(db, cfg, caller, &self.refusals).await
            }
            None => Verdict::Nothing,
        };
        if let Some(caller) = p.extensions.get::<Caller>() {
            let said = match &verdict {
                Verdict::Passed(c) => Some((
                    orchestrator_proto::Level::Info,
                    format!(
                        "its {} passed in {:.1}s",
                        orchestrator_proto::words::count(c.len() as u64, "check"),
                        c.iter().map(|c| c.secs).sum::<f64>()
                    ),
                )),
                Verdict::Refused(t) | Verdict::GaveUp(t) => Some((
                    orchestrator_proto::Level::Warn,
                    format!(
                        "its completion was refused: {}",
                        t.lines().next().unwrap_or("")
                    ),
                )),
                Verdict::Nothing => None,
            };
            if let (Some((level, text)), Some(task)) = (said, &caller.dispatched) {
                let event = crate::store::NewEvent {
                    level,
                    ..crate::store::NewEvent::info(
                        EventKind::TaskChecked,
                        format!("Task {task}: {text}"),
                    )
                }
                .with_data(json!({"task": task}));
                let _ = self
                    .runs
                    .command(&caller.run, |reply| Command::Note { event, reply })
                    .await;
            }
        }
        match verdict {
            Verdict::Refused(text) => Ok(refusal(&text)),
            Verdict::GaveUp(reason) => {
                let back = self
                    .call(
                        &p,
                        Op::Fail {
                            reason: reason.clone(),
                            retryable: true,
                        },
                    )
                    .await?;
                if back.is_error == Some(true) {
                    return Ok(back);
                }
                Ok(refusal(&format!(
                    "complete_task refused for the last time: {reason}\nThe task goes back to the \
                     board with this output for its next worker; stop now."
                )))
            }
            Verdict::Nothing | Verdict::Passed(_) => {
                self.call(&p, Op::Complete { summary: a.summary }).await
            }
        }
    }

    #[tool(
        description = "Give up your task, saying why.",
        output_schema = schema_for_output::<reply::Fail>(),
    )]
    async fn fail_task(
        &self,
        Extension(p): Extension<http::request::Parts>,
        Parameters(a): Parameters<FailArgs>,
    ) -> Result<CallToolResult, McpError> {
        self.call(
            &p,
            Op::Fail {
                reason: a.reason,
                retryable: a.retryable,
            },
        )
        .await
    }

    #[tool(
        description = "Every task's id, title, status, assignee and dependencies.",
        output_schema = schema_for_output::<reply::Board>(),
    )]
    async fn list_tasks(
        &self,
        Extension(p): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, McpError> {
        self.call(&p, Op::Board).await
    }

    #[tool(
        description = "Message a task's worker, all workers, or the orchestrator.",
        output_schema = schema_for_output::<reply::Sent>(),
    )]
    async fn send_message(
        &self,
        Extension(p): Extension<http::request::Parts>,
        Parameters(a): Parameters<SendArgs>,
    ) -> Result<CallToolResult, McpError> {
        let to = match a.to.trim() {
            "all" => To::All,
            "orchestrator" => To::Orchestrator,
            t => To::Task(t.into()),
        };
        self.call(&p, Op::Send { to, body: a.body }).await
    }

    #[tool(
        description = "Messages to you since you last asked.",
        output_schema = schema_for_output::<reply::Messages>(),
    )]
    async fn read_messages(
        &self,
        Extension(p): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, McpError> {
        self.call(&p, Op::ReadMessages).await
    }

    #[tool(
        description = "Ask a human; the answer comes as a message.",
        output_schema = schema_for_output::<reply::Escalated>(),
    )]
    async fn escalate(
        &self,
        Extension(p): Extension<http::request::Parts>,
        Parameters(a): Parameters<EscalateArgs>,
    ) -> Result<CallToolResult, McpError> {
        self.call(
            &p,
            Op::Escalate {
                question: a.question,
                context: a.context,
                blocking: a.blocking,
            },
        )
        .await
    }

    #[tool(
        description = "Planner: submit the plan (summary + 1-200 tasks with unique ids, dependencies, acceptance criteria, files). A refusal lists every problem to fix.",
        output_schema = schema_for_output::<reply::PlanAccepted>(),
    )]
    async fn submit_plan(
        &self,
        Extension(p): Extension<http::request::Parts>,
        Parameters(plan): Parameters<PlanInput>,
    ) -> Result<CallToolResult, McpError> {
        self.call(&p, Op::SubmitPlan(plan)).await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for OrchestratorMcp {
    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, McpError> {
        // Trimmed once per daemon: a service is built per request (stateless), the tools not.
        static LEAN: std::sync::OnceLock<Vec<rmcp::model::Tool>> = std::sync::OnceLock::new();
        let all = LEAN.get_or_init(|| {
            Self::router()
                .list_all()
                .into_iter()
                .map(|mut t| {
                    let mut schema = (*t.input_schema).clone();
                    super::lean::lean(&mut schema);
                    t.input_schema = std::sync::Arc::new(schema);
                    t
                })
                .collect()
        });
        let caller = caller_of(&context);
        let tools = all
            .iter()
            .filter(|t| caller.is_none_or(|c| visible(c, &t.name)))
            .cloned()
            .collect();
        Ok(rmcp::model::ListToolsResult {
            tools,
            // Each role sees its own.
            cache_scope: Some(rmcp::model::CacheScope::Private),
            ..Default::default()
        })
    }

    /// Discovery (the lifecycle without `initialize`, which claude uses), with the
    /// instructions of the caller's role only; private to the caller, as the tools are.
    async fn discover(
        &self,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::DiscoverResult, McpError> {
        let mut info = self.get_info();
        if let Some(c) = caller_of(&context) {
            info.instructions = Some(instructions(c.role));
        }
        Ok(rmcp::model::DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            info,
        ))
    }

    /// The handshake, with the instructions of the caller's role only.
    async fn initialize(
        &self,
        request: rmcp::model::InitializeRequestParams,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::InitializeResult, McpError> {
        context.peer.set_peer_info(request.clone());
        let mut result = self.negotiate_initialize(&request)?;
        if let Some(c) = caller_of(&context) {
            result.instructions = Some(instructions(c.role));
        }
        Ok(result)
    }

    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(
            rmcp::model::ServerCapabilities::builder()
                .enable_tools()
                .build(),
        )
        .with_server_info(rmcp::model::Implementation::new(
            "orchestratord",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(INSTRUCTIONS.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::{INSTRUCTIONS, instructions};
    use crate::board::Role;

    #[test]
    fn each_role_reads_only_its_own_instructions() {
        let w = instructions(Role::Worker);
        assert!(w.contains("Worker: get_task") && w.contains("read_messages"));
        assert!(!w.contains("submit_plan"));
        let p = instructions(Role::Planner);
        assert!(p.contains("submit_plan") && !p.contains("Worker:"));
        let r = instructions(Role::Reviewer);
        assert!(!r.contains("Worker:") && !r.contains("Planner:"));
        assert!(w.len() < INSTRUCTIONS.len() && p.len() < INSTRUCTIONS.len());
    }
}
