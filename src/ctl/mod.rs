//! `hmsctl`: the REST API for people. Each subcommand is one HTTP call of the contract
//! (`docs/rest.md`); answers print as tables, or as the server's JSON with `--json`; an error
//! answer exits non-zero with the server's message.

pub mod client;
mod human;
mod table;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use client::{Answer, Client, ClientError};

/// Command-line client of the HMS REST API.
#[derive(Debug, Parser)]
#[command(name = "hmsctl", version, about = "Drive an HMS controller through its REST API")]
pub struct Cli {
    /// Base URL of the API.
    #[arg(long, env = "HMS_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// Bearer token for mutating requests.
    #[arg(long, env = "HMS_API_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 15, global = true)]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Containers of every host, or of one.
    Containers { host: Option<String> },
    /// One container (full id, short id, unique prefix or name).
    Container { host: String, id: String },
    /// Ignore a container (put it on the ignore list).
    Ignore { host: String, id: String },
    /// Monitor a container again (take it off the ignore list, release a quarantine).
    Monitor { host: String, id: String },
    /// Set the packet-loss threshold (0–100) of one host, or of every host: `threshold [HOST] N`.
    Threshold {
        #[arg(num_args = 1..=2, required = true, value_names = ["HOST", "N"])]
        args: Vec<String>,
    },
    /// Hosts with status and last heartbeat.
    Hosts,
    /// Add a host to supervision (the controller dials its endpoint).
    AddHost {
        host: String,
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Remove a host from supervision.
    RemoveHost { host: String },
    /// Show the settings, or set the aggregation time and the analysis settings.
    Config {
        /// New aggregation time, in seconds.
        #[arg(long)]
        aggregation: Option<f64>,
        /// Analysis on or off on every host.
        #[arg(long, value_parser = ["on", "off"])]
        analysis: Option<String>,
        /// Detection method: hms or seed.
        #[arg(long, value_parser = ["hms", "seed"])]
        method: Option<String>,
        /// Method seed's dissociation degree.
        #[arg(long)]
        dd: Option<f64>,
        /// Method seed's window, in periods.
        #[arg(long)]
        window: Option<u32>,
    },
    /// Drive the antagonist.
    Antagonist {
        #[command(subcommand)]
        action: AntagonistCmd,
    },
    /// The antagonist's log of attacks.
    Attacks {
        #[arg(long)]
        host: Option<String>,
        /// RFC 3339.
        #[arg(long)]
        since: Option<String>,
    },
    /// Anomalies the analysis found: level, culprit and the rule that decided, oldest first.
    Anomalies {
        /// Only the open ones.
        #[arg(long)]
        open: bool,
        #[arg(long)]
        host: Option<String>,
        /// RFC 3339.
        #[arg(long)]
        since: Option<String>,
    },
    /// A container's kept signals, one row per probe period.
    ///
    /// Response time, share of failed requests, workload, CPU, CFS throttling, memory and packet
    /// loss, oldest first; ten minutes are kept.
    Series {
        host: String,
        /// Full id, short id, unique prefix or name.
        id: String,
        /// Only the latest N points (default: every kept point).
        #[arg(long, value_name = "N")]
        last: Option<u32>,
        /// Only points at or after this time (RFC 3339).
        #[arg(long, value_name = "T")]
        since: Option<String>,
    },
    /// Set a container's response-time probe, turn it off, or go back to its label.
    Probe {
        host: String,
        /// Full id, short id, unique prefix or name.
        id: String,
        /// `http://:PORT/PATH` (GET, 2xx/3xx is success), `tcp://:PORT` (connect time), `off`
        /// (none, whatever the label says) or `label` (its `hms.probe` label rules again).
        #[arg(value_name = "URL|off|label")]
        probe: String,
    },
    /// Follow the controller's changes (server-sent events) until interrupted.
    Watch,
}

#[derive(Debug, Subcommand)]
pub enum AntagonistCmd {
    /// Start (optionally with a configuration).
    Start(AntagonistArgs),
    /// Stop.
    Stop(HostArg),
    /// Show the status.
    Status(HostArg),
    /// Change the configuration.
    Config(AntagonistArgs),
}

#[derive(Debug, Args)]
pub struct HostArg {
    /// One host (default: every host).
    #[arg(long)]
    pub host: Option<String>,
}

#[derive(Debug, Args)]
pub struct AntagonistArgs {
    #[command(flatten)]
    pub target: HostArg,
    /// A seed scenario: test_low_low, test_low_high, test_high_low, test_high_high.
    #[arg(long)]
    pub scenario: Option<String>,
    /// A whole configuration as JSON (fields below override it).
    #[arg(long)]
    pub config: Option<String>,
    #[arg(long)]
    pub heavy: Option<f64>,
    #[arg(long)]
    pub balance: Option<f64>,
    #[arg(long)]
    pub loss: Option<f64>,
    #[arg(long)]
    pub frequency: Option<f64>,
    #[arg(long)]
    pub duration: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// `link` or `container`.
    #[arg(long)]
    pub loss_scope: Option<String>,
    #[arg(long)]
    pub stop_timeout: Option<f64>,
}

/// Why a command failed; the binary prints it and exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{message} ({status} {code})")]
    Server { status: u16, code: String, message: String },
    #[error("{0}")]
    Usage(String),
}

/// The seed's scenarios: loss, balance, heavy, frequency, duration.
const SCENARIOS: [(&str, [f64; 5]); 4] = [
    ("test_low_low", [80.0, 70.0, 25.0, 1.0, 5.0]),
    ("test_low_high", [80.0, 70.0, 25.0, 0.1, 5.0]),
    ("test_high_low", [80.0, 70.0, 90.0, 1.0, 20.0]),
    ("test_high_high", [80.0, 70.0, 90.0, 0.1, 20.0]),
];

impl AntagonistArgs {
    /// The configuration body, or None when nothing was given.
    pub fn body(&self) -> Result<Option<Value>, CtlError> {
        let mut body = match &self.config {
            Some(c) => serde_json::from_str::<Value>(c).map_err(|e| CtlError::Usage(format!("--config: {e}")))?,
            None => json!({}),
        };
        let obj = body.as_object_mut().ok_or_else(|| CtlError::Usage("--config must be a JSON object".into()))?;
        if let Some(name) = &self.scenario {
            let (_, v) = SCENARIOS.iter().find(|(n, _)| n == name).ok_or_else(|| {
                let names: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).collect();
                CtlError::Usage(format!("unknown scenario {name}: one of {}", names.join(", ")))
            })?;
            for (k, x) in ["loss", "balance", "heavy", "frequency", "duration"].iter().zip(v) {
                obj.insert((*k).to_owned(), json!(x));
            }
        }
        let numbers = [
            ("heavy", self.heavy),
            ("balance", self.balance),
            ("loss", self.loss),
            ("frequency", self.frequency),
            ("duration", self.duration),
            ("stop_timeout", self.stop_timeout),
        ];
        for (k, v) in numbers {
            if let Some(v) = v {
                obj.insert(k.to_owned(), json!(v));
            }
        }
        if let Some(s) = self.seed {
            obj.insert("seed".into(), json!(s));
        }
        if let Some(s) = &self.loss_scope {
            obj.insert("loss_scope".into(), json!(s));
        }
        Ok((!obj.is_empty()).then_some(body))
    }
}

fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/containers/{host}/{id}` and a suffix.
fn container_path(host: &str, id: &str, suffix: &str) -> String {
    format!("/containers/{}/{}{suffix}", seg(host), seg(id))
}

/// `path`, with the query parameters that have a value.
fn with_query(path: &str, params: &[(&str, Option<String>)]) -> String {
    let q: Vec<String> = params.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", seg(v)))).collect();
    if q.is_empty() { path.to_owned() } else { format!("{path}?{}", q.join("&")) }
}

/// `hmsctl probe HOST ID URL|off|label`: set (PUT), turn off (PUT null) or reset to the label
/// (DELETE). A URL is checked by the server, which names what is wrong with it.
fn probe_call(host: &str, id: &str, probe: &str) -> Call {
    let path = container_path(host, id, "/probe");
    match probe {
        "label" => call("DELETE", path, None, table::View::Record),
        "off" => call("PUT", path, Some(json!({ "probe": null })), table::View::Record),
        url => call("PUT", path, Some(json!({ "probe": url })), table::View::Record),
    }
}

fn antagonist_path(host: Option<&str>) -> String {
    host.map_or_else(|| "/antagonist".to_owned(), |h| format!("/antagonist/{}", seg(h)))
}

/// What one command asks: method, path, body, and how to print a table of the answer.
struct Call {
    method: &'static str,
    path: String,
    body: Option<Value>,
    view: table::View,
}

fn call(method: &'static str, path: String, body: Option<Value>, view: table::View) -> Call {
    Call { method, path, body, view }
}

fn plan(cmd: &Cmd) -> Result<Call, CtlError> {
    use table::View;
    Ok(match cmd {
        Cmd::Containers { host: None } => call("GET", "/containers".into(), None, View::Containers),
        Cmd::Containers { host: Some(h) } => call("GET", format!("/containers/{}", seg(h)), None, View::OneHost),
        Cmd::Container { host, id } => call("GET", container_path(host, id, ""), None, View::Record),
        Cmd::Ignore { host, id } => call("DELETE", container_path(host, id, ""), None, View::Record),
        Cmd::Monitor { host, id } => call("PUT", container_path(host, id, ""), None, View::Record),
        Cmd::Threshold { args } => {
            let (host, n) = match args.as_slice() {
                [n] => (None, n),
                [h, n] => (Some(h), n),
                _ => return Err(CtlError::Usage("usage: hmsctl threshold [HOST] N".into())),
            };
            let n: i64 = n.parse().map_err(|_| CtlError::Usage(format!("threshold must be an integer, got {n}")))?;
            let path = host.map_or_else(|| "/containers".to_owned(), |h| format!("/containers/{}", seg(h)));
            call("POST", path, Some(json!({ "threshold": n })), View::Record)
        }
        Cmd::Hosts => call("GET", "/hosts".into(), None, View::Hosts),
        Cmd::AddHost { host, endpoint } => {
            let body = endpoint.as_ref().map(|e| json!({ "endpoint": e }));
            call("PUT", format!("/containers/{}", seg(host)), body, View::Record)
        }
        Cmd::RemoveHost { host } => call("DELETE", format!("/containers/{}", seg(host)), None, View::Record),
        Cmd::Config { aggregation, analysis, method, dd, window } => {
            let mut patch = serde_json::Map::new();
            if let Some(on) = analysis {
                patch.insert("enabled".into(), json!(on == "on"));
            }
            if let Some(m) = method {
                patch.insert("method".into(), json!(m));
            }
            if let Some(dd) = dd {
                patch.insert("dd".into(), json!(dd));
            }
            if let Some(w) = window {
                patch.insert("window".into(), json!(w));
            }
            let mut body = serde_json::Map::new();
            if let Some(a) = aggregation {
                body.insert("aggregation".into(), json!(a));
            }
            if !patch.is_empty() {
                body.insert("analysis".into(), Value::Object(patch));
            }
            match body.is_empty() {
                true => call("GET", "/config".into(), None, View::Record),
                false => call("PUT", "/config".into(), Some(Value::Object(body)), View::Record),
            }
        }
        Cmd::Antagonist { action } => match action {
            AntagonistCmd::Start(a) => call("PUT", antagonist_path(a.target.host.as_deref()), a.body()?, View::Record),
            AntagonistCmd::Config(a) => {
                let body = a.body()?.ok_or_else(|| CtlError::Usage("nothing to configure".into()))?;
                call("POST", antagonist_path(a.target.host.as_deref()), Some(body), View::Record)
            }
            AntagonistCmd::Stop(h) => call("DELETE", antagonist_path(h.host.as_deref()), None, View::Record),
            AntagonistCmd::Status(h) => call("GET", antagonist_path(h.host.as_deref()), None, View::Record),
        },
        Cmd::Attacks { host, since } => {
            let path = with_query("/attacks", &[("host", host.clone()), ("since", since.clone())]);
            call("GET", path, None, View::Records)
        }
        Cmd::Anomalies { open, host, since } => {
            let open = open.then(|| "true".to_owned());
            let path = with_query("/anomalies", &[("host", host.clone()), ("since", since.clone()), ("open", open)]);
            call("GET", path, None, View::Records)
        }
        Cmd::Series { host, id, last, since } => {
            let params = [("last", last.map(|n| n.to_string())), ("since", since.clone())];
            call("GET", with_query(&container_path(host, id, "/series"), &params), None, View::Series)
        }
        Cmd::Probe { host, id, probe } => probe_call(host, id, probe),
        Cmd::Watch => return Err(CtlError::Usage("watch is not a single call".into())),
    })
}

fn server_error(a: &Answer) -> CtlError {
    let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
    let text = |k: &str| v[k].as_str().map(str::to_owned);
    CtlError::Server {
        status: a.status,
        code: text("error").unwrap_or_else(|| "error".into()),
        message: text("message").unwrap_or_else(|| a.body.trim().to_owned()),
    }
}

/// Runs one command, printing to `out`.
pub fn run(cli: &Cli, out: &mut dyn std::io::Write) -> Result<(), CtlError> {
    let client = Client::new(&cli.url, cli.token.clone(), Duration::from_secs(cli.timeout.max(1)))?;
    if let Cmd::Watch = cli.command {
        return watch(&client, cli.json, out);
    }
    let c = plan(&cli.command)?;
    let body = c.body.as_ref().map(Value::to_string);
    let answer = client.request(c.method, &c.path, body.as_deref())?;
    if !(200..300).contains(&answer.status) {
        return Err(server_error(&answer));
    }
    let v: Value = serde_json::from_str(&answer.body).unwrap_or(Value::String(answer.body.clone()));
    let text = if cli.json {
        format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
    } else {
        c.view.render(&v)
    };
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

fn watch(client: &Client, raw: bool, out: &mut dyn std::io::Write) -> Result<(), CtlError> {
    let answer = client.follow("/events", |name, data| {
        let line = if raw { format!("{data}\n") } else { table::event_line(name, data) };
        out.write_all(line.as_bytes()).and_then(|()| out.flush()).is_ok()
    })?;
    if answer.status != 200 {
        return Err(server_error(&answer));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("hmsctl").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn commands_map_to_the_rest_contract() {
        let c = plan(&parse(&["threshold", "40"]).command).unwrap();
        assert_eq!((c.method, c.path.as_str(), c.body), ("POST", "/containers", Some(json!({"threshold": 40}))));
        let c = plan(&parse(&["threshold", "node 1", "40"]).command).unwrap();
        assert_eq!((c.method, c.path.as_str()), ("POST", "/containers/node%201"));
        let c = plan(&parse(&["ignore", "h", "web"]).command).unwrap();
        assert_eq!((c.method, c.path.as_str()), ("DELETE", "/containers/h/web"));
        let c = plan(&parse(&["antagonist", "start", "--host", "h", "--scenario", "test_low_high"]).command).unwrap();
        assert_eq!((c.method, c.path.as_str()), ("PUT", "/antagonist/h"));
        assert_eq!(c.body.unwrap()["frequency"], json!(0.1));
        let c = plan(&parse(&["antagonist", "config", "--config", r#"{"loss":5}"#, "--seed", "7"]).command).unwrap();
        assert_eq!((c.method, c.body), ("POST", Some(json!({"loss": 5, "seed": 7}))));
        let c = plan(&parse(&["attacks", "--host", "h"]).command).unwrap();
        assert_eq!(c.path, "/attacks?host=h");
        let c = plan(&parse(&["anomalies", "--open", "--host", "h"]).command).unwrap();
        assert_eq!((c.method, c.path.as_str()), ("GET", "/anomalies?host=h&open=true"));
        assert_eq!(plan(&parse(&["anomalies"]).command).unwrap().path, "/anomalies");
    }

    #[test]
    fn series_asks_for_the_points_wanted() {
        let c = plan(&parse(&["series", "vm 1", "web"]).command).unwrap();
        assert_eq!((c.method, c.path.as_str(), c.body), ("GET", "/containers/vm%201/web/series", None));
        let c = plan(&parse(&["series", "h", "web", "--since", "2026-05-01T08:00:00+02:00", "--last", "5"]).command);
        assert_eq!(c.unwrap().path, "/containers/h/web/series?last=5&since=2026-05-01T08%3A00%3A00%2B02%3A00");
        assert!(Cli::try_parse_from(["hmsctl", "series", "h", "web", "--last", "-1"]).is_err());
    }

    #[test]
    fn probe_sets_turns_off_or_goes_back_to_the_label() {
        let c = plan(&parse(&["probe", "h", "web", "http://:8080/health"]).command).unwrap();
        let body = Some(json!({"probe": "http://:8080/health"}));
        assert_eq!((c.method, c.path.as_str(), c.body), ("PUT", "/containers/h/web/probe", body));
        let c = plan(&parse(&["probe", "h", "web", "off"]).command).unwrap();
        assert_eq!((c.method, c.body), ("PUT", Some(json!({"probe": null}))));
        let c = plan(&parse(&["probe", "h", "web", "label"]).command).unwrap();
        assert_eq!((c.method, c.path.as_str(), c.body), ("DELETE", "/containers/h/web/probe", None));
        assert!(Cli::try_parse_from(["hmsctl", "probe", "h", "web"]).is_err());
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        assert!(matches!(plan(&parse(&["threshold", "x"]).command), Err(CtlError::Usage(_))));
        let bad = parse(&["antagonist", "start", "--scenario", "nope"]);
        assert!(matches!(plan(&bad.command), Err(CtlError::Usage(_))));
        assert!(Cli::try_parse_from(["hmsctl", "threshold"]).is_err());
    }
}
