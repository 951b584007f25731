//! [`Client`]: typed calls to the daemon's `/v1` API over its Unix socket.

use std::path::{Path, PathBuf};

use orchestrator_proto::{
    AnswerEscalation, ErrorBody, Escalation, EscalationList, Event, EventList, Health,
    ListEscalations, ListRuns, ReadEvents, Run, RunList, SubmitRun, Transition,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    socket: PathBuf,
}

/// Where a command's run is: an explicit id, or a project's current run.
#[derive(Debug, Clone)]
pub enum RunRef {
    Id(String),
    Project(String),
}

impl Client {
    pub fn new(socket: &Path) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .unix_socket(socket)
            .build()
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(Self {
            http,
            socket: socket.to_path_buf(),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn url(path: &str) -> String {
        format!("http://orchestratord{path}")
    }

    /// A transport failure: nothing (or nothing sane) answers on the socket.
    fn unreachable(&self, source: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            socket: self.socket.clone(),
            source,
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        decode(resp).await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &impl Serialize,
    ) -> Result<T, ClientError> {
        self.send(self.http.get(Self::url(path)).query(query)).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        self.send(self.http.post(Self::url(path)).json(body)).await
    }

    /// The daemon's health, after checking it speaks our protocol (a daemon of another
    /// version gets [`ClientError::ProtocolMismatch`], not a decoding error).
    pub async fn health(&self) -> Result<Health, ClientError> {
        let raw: serde_json::Value = self.get("/v1/health", &()).await?;
        let decode = |e: serde_json::Error| ClientError::Decode(e.to_string());
        let probe: orchestrator_proto::HealthProbe =
            serde_json::from_value(raw.clone()).map_err(decode)?;
        crate::autostart::check_protocol(self.socket(), &probe)?;
        serde_json::from_value(raw).map_err(decode)
    }

    pub async fn submit(&self, req: &SubmitRun) -> Result<Run, ClientError> {
        self.post("/v1/runs", req).await
    }

    pub async fn list(&self, q: &ListRuns) -> Result<Vec<Run>, ClientError> {
        Ok(self.get::<RunList>("/v1/runs", q).await?.runs)
    }

    pub async fn run(&self, r: &RunRef) -> Result<Run, ClientError> {
        match r {
            RunRef::Id(id) => self.get(&format!("/v1/runs/{id}"), &()).await,
            RunRef::Project(p) => self.get("/v1/runs/current", &[("project", p)]).await,
        }
    }

    pub async fn transition(
        &self,
        id: &str,
        verb: &str,
        reason: Option<String>,
        change: orchestrator_proto::OptionsChange,
        change_names: Vec<String>,
    ) -> Result<Run, ClientError> {
        let forward = if verb == "resume" {
            crate::forward::names(&change_names)
        } else {
            Vec::new()
        };
        let env = if verb == "resume" {
            orchestrator_proto::SessionEnv::capture_with(&forward)
        } else {
            orchestrator_proto::SessionEnv::default()
        };
        self.post(
            &format!("/v1/runs/{id}/{verb}"),
            &Transition {
                reason,
                env,
                change,
                forward,
            },
        )
        .await
    }

    pub async fn events(&self, id: &str, q: &ReadEvents) -> Result<Vec<Event>, ClientError> {
        Ok(self
            .get::<EventList>(&format!("/v1/runs/{id}/events"), q)
            .await?
            .events)
    }

    /// Streams the run's events to `each` until the run finishes or the daemon stops.
    /// Follows the run's events after `after` (the last `tail` of them first) until the run
    /// finishes, the daemon stops or `each` says stop (`false`).
    pub async fn follow(
        &self,
        id: &str,
        after: Option<u64>,
        tail: Option<u32>,
        mut each: impl FnMut(Event) -> Result<bool, ClientError>,
    ) -> Result<(), ClientError> {
        let q = ReadEvents {
            after,
            tail,
            follow: true,
        };
        let req = self
            .http
            .get(Self::url(&format!("/v1/runs/{id}/events")))
            .query(&q);
        let mut resp = req.send().await.map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return decode::<serde_json::Value>(resp).await.map(drop);
        }
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.unreachable(e))? {
            buf.extend_from_slice(&chunk);
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let event = serde_json::from_slice(&line)
                    .map_err(|e| ClientError::Decode(e.to_string()))?;
                if !each(event)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    pub async fn tasks(&self, id: &str) -> Result<Vec<orchestrator_proto::Task>, ClientError> {
        Ok(self
            .get::<orchestrator_proto::TaskList>(&format!("/v1/runs/{id}/tasks"), &())
            .await?
            .tasks)
    }

    pub async fn cost(
        &self,
        id: &str,
    ) -> Result<orchestrator_proto::cost::CostLedger, ClientError> {
        self.get(&format!("/v1/runs/{id}/cost"), &()).await
    }

    pub async fn task_output(
        &self,
        id: &str,
        task: &str,
        after: u64,
    ) -> Result<orchestrator_proto::session::TaskOutput, ClientError> {
        let q = orchestrator_proto::session::ReadOutput { after: Some(after) };
        self.get(&format!("/v1/runs/{id}/tasks/{task}/output"), &q)
            .await
    }

    pub async fn ui_login(
        &self,
        req: &orchestrator_proto::ui::UiLogin,
    ) -> Result<orchestrator_proto::ui::UiLoginUrl, ClientError> {
        self.post("/v1/ui/login", req).await
    }

    pub async fn pr(
        &self,
        id: &str,
        req: &orchestrator_proto::pr::OpenPr,
    ) -> Result<orchestrator_proto::pr::PrReport, ClientError> {
        self.post(&format!("/v1/runs/{id}/pr"), req).await
    }

    pub async fn attach(
        &self,
        id: &str,
        task: &str,
    ) -> Result<orchestrator_proto::session::Attached, ClientError> {
        self.post(
            &format!("/v1/runs/{id}/tasks/{task}/attach"),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn detach(
        &self,
        id: &str,
        task: &str,
        session: &str,
    ) -> Result<orchestrator_proto::session::Detached, ClientError> {
        let req = orchestrator_proto::session::Detach {
            session: session.to_owned(),
        };
        self.post(&format!("/v1/runs/{id}/tasks/{task}/detach"), &req)
            .await
    }

    pub async fn tell(
        &self,
        id: &str,
        tell: &orchestrator_proto::Tell,
    ) -> Result<orchestrator_proto::Told, ClientError> {
        self.post(&format!("/v1/runs/{id}/messages"), tell).await
    }

    pub async fn escalations(&self, q: &ListEscalations) -> Result<Vec<Escalation>, ClientError> {
        Ok(self
            .get::<EscalationList>("/v1/escalations", q)
            .await?
            .escalations)
    }

    pub async fn clean(
        &self,
        req: &orchestrator_proto::clean::CleanRequest,
    ) -> Result<orchestrator_proto::clean::CleanReport, ClientError> {
        self.post("/v1/clean", req).await
    }

    pub async fn stray_sessions(
        &self,
    ) -> Result<Vec<orchestrator_proto::session::StraySession>, ClientError> {
        Ok(self
            .get::<orchestrator_proto::session::StrayList>("/v1/sessions/stray", &())
            .await?
            .sessions)
    }

    pub async fn usage(&self) -> Result<orchestrator_proto::usage::UsageReport, ClientError> {
        self.get("/v1/usage", &()).await
    }

    pub async fn answer(
        &self,
        id: u64,
        answer: String,
        change: orchestrator_proto::OptionsChange,
    ) -> Result<Escalation, ClientError> {
        self.post(
            &format!("/v1/escalations/{id}/answer"),
            &AnswerEscalation { answer, change },
        )
        .await
    }

    pub async fn shutdown(&self) -> Result<(), ClientError> {
        let resp = self
            .http
            .post(Self::url("/v1/daemon/shutdown"))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            decode::<serde_json::Value>(resp).await.map(drop)
        }
    }
}

async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ClientError> {
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ClientError::Decode(e.to_string()))?;
    if status.is_success() {
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Decode(format!("{e} in {}", String::from_utf8_lossy(&bytes))))
    } else {
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(ClientError::Api(body)),
            Err(_) => Err(ClientError::Decode(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            ))),
        }
    }
}
