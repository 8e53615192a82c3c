//! `rlnet port add|rm|ls`: argv → one request to a running instance's API
//! socket ([`PortCommand::request`]), and the reply → text for stdout
//! ([`PortCommand::render`]). Sending the request is the caller's (main.rs,
//! through [`crate::api::client`]); this file stays pure.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Parser;

use super::{
    CliExit, Command, Form, Invocation, api_socket_path, err, invalid, parse_specs, parse_with,
    utf8,
};
use crate::api::{ClientRequest, Entry, Reply, ReplyError, reply_entries, reply_ids};
use crate::forward::spec::Mode;
use crate::forward::spec::PublishSpec;
use crate::forward::table::RuleId;

/// `rlnet port ...`: which API socket to ask, what, and how to print the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortCommand {
    /// Which running instance to ask.
    pub target: PortTarget,
    /// `--json`: print the API's answer instead of text for people.
    pub json: bool,
    pub action: PortAction,
}

/// Where `rlnet port` sends its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortTarget {
    /// `-a/--api-socket PATH`: the socket of a running instance.
    Socket(PathBuf),
    /// `--network NAME`: a named network's daemon.
    Network(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortAction {
    /// `add [--mode MODE] [--to N] SPEC...`; `mode: None` = the instance's
    /// default; `to`: the member of a named network.
    Add {
        specs: Vec<PublishSpec>,
        mode: Option<Mode>,
        to: Option<String>,
    },
    /// `rm ID...`
    Remove { ids: Vec<RuleId> },
    /// `ls`
    List,
}

/// `rlnet port add|rm|ls [OPTION]... [ARG]...`
#[derive(Debug, Parser)]
#[command(
    name = "rlnet port",
    disable_help_flag = true,
    disable_version_flag = true,
    infer_long_args = true,
    args_override_self = true
)]
pub(super) struct PortCli {
    #[arg(short = 'h', long = "help")]
    help: bool,
    #[arg(short = 'a', long = "api-socket", value_name = "PATH", allow_hyphen_values = true,
          value_parser = clap::value_parser!(OsString))]
    api_socket: Option<OsString>,
    #[arg(long = "mode", value_name = "MODE", allow_hyphen_values = true)]
    mode: Option<String>,
    #[arg(long = "network", value_name = "NAME", allow_hyphen_values = true)]
    network: Option<String>,
    #[arg(long = "to", value_name = "NAME", allow_hyphen_values = true)]
    to: Option<String>,
    #[arg(long = "json")]
    json: bool,
    #[arg(value_name = "add|rm|ls [ARG]...", value_parser = clap::value_parser!(OsString))]
    words: Vec<OsString>,
}

/// Parses `rlnet port ...`; `args` starts with the command's name.
pub(super) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, CliExit> {
    invocation(parse_with::<PortCli>(Form::Port, args)?)
}

fn invocation(cli: PortCli) -> Result<Invocation, CliExit> {
    let hint = Form::Port.help_hint();
    if cli.help {
        return Err(CliExit::Print(Form::Port.help()));
    }
    let words = utf8(cli.words, "argument")?;
    let Some((verb, args)) = words.split_first() else {
        return err(format!(
            "missing the port command: use add, rm or ls {hint}"
        ));
    };
    if !["add", "rm", "ls"].contains(&verb.as_str()) {
        return err(format!(
            "unknown port command {verb:?}: use add, rm or ls {hint}"
        ));
    }
    let target = target(cli.api_socket, cli.network)?;
    check_add_options(verb, cli.mode.is_some(), cli.to.as_deref())?;
    let action = match verb.as_str() {
        "add" => add_action(args, cli.mode.as_deref(), cli.to)?,
        "rm" => remove_action(args)?,
        _ => list_action(args)?,
    };
    Ok(Invocation {
        command: Command::Port(PortCommand {
            target,
            json: cli.json,
            action,
        }),
        log_level: log::LevelFilter::Warn,
        warnings: Vec::new(),
    })
}

/// `-a PATH` or `--network NAME`: exactly one of them.
fn target(api_socket: Option<OsString>, network: Option<String>) -> Result<PortTarget, CliExit> {
    let hint = Form::Port.help_hint();
    match (api_socket, network) {
        (Some(path), None) => Ok(PortTarget::Socket(api_socket_path(path)?)),
        (None, Some(net)) => {
            if !crate::api::valid_member_name(&net) {
                return err(format!(
                    "invalid value for --network: {net:?} is not a network name {hint}"
                ));
            }
            Ok(PortTarget::Network(net))
        }
        (Some(_), Some(_)) => err(format!(
            "give either --api-socket or --network, not both {hint}"
        )),
        (None, None) => err(format!(
            "missing --api-socket=PATH: the API socket of the running rlnet, as given to \
             its --api-socket (or --network NAME for a named network) {hint}"
        )),
    }
}

/// `--mode` and `--to` go with `add` only; `--to` names a member.
fn check_add_options(verb: &str, mode: bool, to: Option<&str>) -> Result<(), CliExit> {
    let hint = Form::Port.help_hint();
    if mode && verb != "add" {
        return err(format!("--mode is for 'rlnet port add' only {hint}"));
    }
    if to.is_some() && verb != "add" {
        return err(format!("--to is for 'rlnet port add' only {hint}"));
    }
    if let Some(to) = to
        && !crate::api::valid_member_name(to)
    {
        return err(format!(
            "invalid value for --to: {to:?} is not a member name {hint}"
        ));
    }
    Ok(())
}

/// `add [--mode MODE] [--to N] SPEC...`
fn add_action(
    args: &[String],
    mode: Option<&str>,
    to: Option<String>,
) -> Result<PortAction, CliExit> {
    if args.is_empty() {
        return err(format!(
            "missing SPEC: usage: rlnet port add -a PATH [--mode=MODE] SPEC... {}",
            Form::Port.help_hint()
        ));
    }
    let mode = match mode {
        None => None,
        Some(m) => Some(m.parse().map_err(invalid("--mode"))?),
    };
    Ok(PortAction::Add {
        specs: parse_specs(args, "SPEC")?,
        mode,
        to,
    })
}

/// `rm ID...`
fn remove_action(args: &[String]) -> Result<PortAction, CliExit> {
    if args.is_empty() {
        return err(format!(
            "missing ID: usage: rlnet port rm -a PATH ID... {}",
            Form::Port.help_hint()
        ));
    }
    Ok(PortAction::Remove {
        ids: args
            .iter()
            .map(|a| parse_rule_id(a))
            .collect::<Result<_, _>>()?,
    })
}

/// `ls`, which takes no argument.
fn list_action(args: &[String]) -> Result<PortAction, CliExit> {
    if let Some(extra) = args.first() {
        return err(format!(
            "unexpected argument {extra:?}: 'rlnet port ls' takes none {}",
            Form::Port.help_hint()
        ));
    }
    Ok(PortAction::List)
}

/// A rule id as `rlnet port ls` shows it: 1 to 2^53, like the API takes.
fn parse_rule_id(s: &str) -> Result<RuleId, CliExit> {
    match s.parse::<RuleId>() {
        Ok(id) if (1..=1 << 53).contains(&id) => Ok(id),
        _ => err(format!(
            "invalid rule id {s:?}: use a number from the ID column of 'rlnet port ls'"
        )),
    }
}

impl PortCommand {
    /// The API request this command sends.
    pub fn request(&self) -> ClientRequest {
        match &self.action {
            PortAction::Add { specs, mode, to } => ClientRequest::AddPublish {
                specs: specs.clone(),
                mode: *mode,
                to: to.clone(),
            },
            PortAction::Remove { ids } => ClientRequest::RemovePublish { ids: ids.clone() },
            PortAction::List => ClientRequest::ListHostfwd,
        }
    }

    /// The text for stdout, from the success reply's value; `Err` says
    /// what is wrong with a reply of the wrong shape.
    pub fn render(&self, reply: &Reply) -> Result<String, ReplyError> {
        match &self.action {
            PortAction::Add { specs, .. } => {
                let ids = reply_ids(reply)?;
                if ids.len() != specs.len() {
                    return Err(ReplyError::IdCount {
                        got: ids.len(),
                        want: specs.len(),
                        reply: reply.to_string(),
                    });
                }
                if self.json {
                    return Ok(format!("{reply}\n"));
                }
                Ok(specs
                    .iter()
                    .zip(ids)
                    .map(|(spec, id)| format!("published {spec} as id {id}\n"))
                    .collect())
            }
            PortAction::Remove { ids } => {
                if self.json {
                    return Ok(format!("{reply}\n"));
                }
                Ok(ids.iter().map(|id| format!("removed {id}\n")).collect())
            }
            PortAction::List => {
                let entries = reply_entries(reply)?;
                if self.json {
                    // Through `Entry`, so keys keep the API's documented
                    // order (serde_json's `Value` would sort them).
                    let json = serde_json::to_string(&entries)
                        .map_err(|e| ReplyError::Print(e.to_string()))?;
                    return Ok(format!("{json}\n"));
                }
                Ok(port_table(&entries))
            }
        }
    }
}

/// `rlnet port ls`'s table: left-aligned columns two spaces apart.
fn port_table(entries: &[Entry]) -> String {
    let mut rows: Vec<[String; 5]> = vec![[
        "ID".into(),
        "PROTO".into(),
        "HOST".into(),
        "NAMESPACE".into(),
        "MODE".into(),
    ]];
    for e in entries {
        rows.push([
            e.id.to_string(),
            e.proto.clone(),
            endpoint(&e.host_addr, e.host_port, e.host_port_end),
            endpoint(&e.guest_addr, e.guest_port, e.guest_port_end),
            e.mode.unwrap_or_default().to_string(),
        ]);
    }
    let mut widths = [0; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `*:8080` (all addresses), `127.0.0.1:8080`, `[::1]:8000-8010`.
fn endpoint(addr: &str, port: u16, end: Option<u16>) -> String {
    let addr = if addr.is_empty() {
        "*".to_string()
    } else if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_string()
    };
    match end {
        Some(end) if end != port => format!("{addr}:{port}-{end}"),
        _ => format!("{addr}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::help::{help_text, port_help_text};
    use super::super::testing::{fails, ok, printed};
    use super::*;

    fn port(args: &[&str]) -> PortCommand {
        let mut argv = vec!["port"];
        argv.extend_from_slice(args);
        let inv = ok(&argv);
        assert_eq!(inv.log_level, log::LevelFilter::Warn);
        assert!(inv.warnings.is_empty());
        match inv.command {
            Command::Port(p) => p,
            other => panic!("not a port command: {other:?}"),
        }
    }

    fn spec(s: &str) -> PublishSpec {
        s.parse().unwrap()
    }

    #[test]
    fn port_forms() {
        for args in [
            &["add", "-a", "/run/x.sock", "8080:80"][..],
            &["add", "--api-socket=/run/x.sock", "8080:80"],
            &["-a/run/x.sock", "add", "8080:80"],
            &["add", "8080:80", "--api", "/run/x.sock"],
            &["add", "-a", "/run/x.sock", "--", "8080:80"],
        ] {
            assert_eq!(
                port(args),
                PortCommand {
                    target: PortTarget::Socket("/run/x.sock".into()),
                    json: false,
                    action: PortAction::Add {
                        specs: vec![spec("8080:80")],
                        mode: None,
                        to: None,
                    },
                },
                "{args:?}"
            );
        }
        let p = port(&[
            "add",
            "-a",
            "/s",
            "--mode=splice",
            "--json",
            "127.0.0.1:53:53/udp",
            "[::1]:8000-8010:9000-9010",
        ]);
        assert!(p.json);
        assert_eq!(
            p.action,
            PortAction::Add {
                specs: vec![
                    spec("127.0.0.1:53:53/udp"),
                    spec("[::1]:8000-8010:9000-9010")
                ],
                mode: Some(Mode::Splice),
                to: None,
            }
        );
        assert_eq!(
            p.request(),
            ClientRequest::AddPublish {
                specs: vec![
                    spec("127.0.0.1:53:53/udp"),
                    spec("[::1]:8000-8010:9000-9010")
                ],
                mode: Some(Mode::Splice),
                to: None,
            }
        );
        let p = port(&["add", "-a", "/s", "--mode", "stack", "80:80"]);
        assert_eq!(
            p.action,
            PortAction::Add {
                specs: vec![spec("80:80")],
                mode: Some(Mode::Stack),
                to: None,
            }
        );
        let p = port(&["rm", "-a", "/s", "3", "1", "--json"]);
        assert!(p.json);
        assert_eq!(p.action, PortAction::Remove { ids: vec![3, 1] });
        assert_eq!(
            p.request(),
            ClientRequest::RemovePublish { ids: vec![3, 1] }
        );
        let p = port(&["ls", "-a", "/s"]);
        assert_eq!(p.action, PortAction::List);
        assert_eq!(p.request(), ClientRequest::ListHostfwd);
        // "port" is a subcommand only as the first word.
        fails(&["-c", "port", "ls"], "PID must be a positive integer");
    }

    #[test]
    fn port_errors_are_one_line() {
        for (args, needle) in [
            (&["port"][..], "missing the port command: use add, rm or ls"),
            (&["port", "-a", "/s"], "missing the port command"),
            (
                &["port", "list", "-a", "/s"],
                "unknown port command \"list\"",
            ),
            (&["port", "ls"], "missing --api-socket=PATH"),
            (&["port", "add", "80:80"], "missing --api-socket=PATH"),
            (&["port", "ls", "-a", ""], "--api-socket"),
            (&["port", "ls", "-a", &"/x".repeat(60)], "too long"),
            (&["port", "add", "-a", "/s"], "missing SPEC"),
            (&["port", "rm", "-a", "/s"], "missing ID"),
            (
                &["port", "ls", "-a", "/s", "3"],
                "unexpected argument \"3\"",
            ),
            (
                &["port", "add", "-a", "/s", "8080"],
                "invalid SPEC \"8080\": missing the namespace port",
            ),
            (&["port", "add", "-a", "/s", "80:80/sctp"], "sctp"),
            (
                &["port", "add", "-a", "/s", "80:80", "[::]:80:81"],
                "invalid SPEC: host port 80/tcp is published twice in this request",
            ),
            (
                &["port", "add", "-a", "/s", "--mode=fast", "80:80"],
                "invalid value for --mode: unknown publish mode \"fast\"",
            ),
            (
                &["port", "rm", "-a", "/s", "--mode=splice", "1"],
                "--mode is for 'rlnet port add' only",
            ),
            (&["port", "ls", "-a", "/s", "--mode=stack"], "--mode"),
            (&["port", "rm", "-a", "/s", "x"], "invalid rule id \"x\""),
            (&["port", "rm", "-a", "/s", "0"], "invalid rule id \"0\""),
            (&["port", "rm", "-a", "/s", "1", "-2"], "'-2'"),
            (
                &["port", "rm", "-a", "/s", "9007199254740993"],
                "invalid rule id",
            ),
            (
                &["port", "ls", "-a", "/s", "--bogus"],
                "unrecognized option '--bogus' (see 'rlnet port --help')",
            ),
            (&["port", "ls", "--json=yes", "-a", "/s"], "\"yes\""),
            (&["port", "ls", "-a"], "'--api-socket' needs a value"),
            // Network options belong to the serving forms.
            (&["port", "ls", "-a", "/s", "--mtu=1500"], "'--mtu'"),
        ] {
            // Never sent to the other forms' help.
            let line = fails(args, needle);
            assert!(!line.contains("'rlnet --help'"), "{line}");
        }
        assert_eq!(
            port(&["rm", "-a", "/s", "9007199254740992"]).request(),
            ClientRequest::RemovePublish { ids: vec![1 << 53] }
        );
    }

    #[test]
    fn port_help() {
        for args in [
            &["port", "--help"][..],
            &["port", "-h"],
            &["port", "add", "--help"],
            &["port", "ls", "-a", "/s", "-h"],
            &["port", "bogus", "--he"],
        ] {
            assert_eq!(printed(args), port_help_text(), "{args:?}");
        }
        assert!(port_help_text().starts_with("Usage: rlnet port add -a PATH"));
        assert!(help_text().contains("rlnet port add|rm|ls -a PATH"));
    }

    fn render(args: &[&str], reply: serde_json::Value) -> Result<String, String> {
        port(args).render(&reply).map_err(|e| e.to_string())
    }

    #[test]
    fn port_output() {
        use serde_json::json;
        let add = ["add", "-a", "/s", "8080:80", "127.0.0.1:5353:53/udp"];
        assert_eq!(
            render(&add, json!({"ids": [3, 4]})).unwrap(),
            "published 8080:80/tcp as id 3\npublished 127.0.0.1:5353:53/udp as id 4\n"
        );
        let mut add_json = add.to_vec();
        add_json.push("--json");
        assert_eq!(
            render(&add_json, json!({"ids": [3, 4]})).unwrap(),
            "{\"ids\":[3,4]}\n"
        );
        let e = render(&add, json!({"ids": [3]})).unwrap_err();
        assert!(e.starts_with("unexpected reply: 1 ids for 2 specs"), "{e}");
        assert!(render(&add, json!({})).is_err());
        assert_eq!(
            render(&["rm", "-a", "/s", "3", "1"], json!({})).unwrap(),
            "removed 3\nremoved 1\n"
        );
        assert_eq!(
            render(&["rm", "-a", "/s", "3", "--json"], json!({})).unwrap(),
            "{}\n"
        );
    }

    #[test]
    fn port_ls_table() {
        use serde_json::json;
        let entries = json!([
            {"id":1,"proto":"tcp","host_addr":"","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80},
            {"id":2,"proto":"udp","host_addr":"127.0.0.1","host_port":5353,"guest_addr":"10.0.2.100","guest_port":53},
            {"id":12,"proto":"tcp","host_addr":"::1","host_port":8000,"guest_addr":"fd00::100","guest_port":9000,
             "host_port_end":8010,"guest_port_end":9010,"mode":"splice"},
            {"id":13,"proto":"tcp","host_addr":"0.0.0.0","host_port":443,"guest_addr":"10.0.2.101","guest_port":8443}
        ]);
        let ls = ["ls", "-a", "/s"];
        let want = "\
ID  PROTO  HOST             NAMESPACE              MODE
1   tcp    *:8080           10.0.2.100:80          stack
2   udp    127.0.0.1:5353   10.0.2.100:53          stack
12  tcp    [::1]:8000-8010  [fd00::100]:9000-9010  splice
13  tcp    0.0.0.0:443      10.0.2.101:8443        stack
";
        let reply = json!({"entries": entries});
        assert_eq!(render(&ls, reply.clone()).unwrap(), want);
        assert_eq!(
            render(&ls, json!({"entries": []})).unwrap(),
            "ID  PROTO  HOST  NAMESPACE  MODE\n"
        );
        let json_out = render(&["ls", "-a", "/s", "--json"], reply).unwrap();
        let printed: serde_json::Value = serde_json::from_str(&json_out).unwrap();
        assert_eq!(printed, entries);
        // One line, keys in the API's order.
        assert_eq!(json_out.lines().count(), 1);
        assert!(json_out.starts_with(r#"[{"id":1,"proto":"tcp","host_addr":"","#));
        assert!(render(&ls, json!({"ids": [1]})).is_err());
        assert!(render(&ls, json!({"entries": [{"id": "x"}]})).is_err());
    }
}
