//! Carrying out `rlnet network|attach|detach`: requests to the networks'
//! daemons over their API sockets, rendered for people or as JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::daemon::{self, NetworkError};
use super::registry::{self, Record};
use super::request::NetworkCommand;
use crate::api::client::{self, ClientError};
use crate::api::{ClientRequest, Entry, ReplyError, reply_entries};
use crate::api::{MemberInfo, MemberRef};
use crate::model::ipam;

/// Attaching forks an agent into the namespace and configures a TAP;
/// a loaded machine may take a while.
pub(super) const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `rm` waits for a daemon to be gone.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// One network as `ls --json` and `inspect --json` show it.
#[derive(Debug, Serialize, Deserialize)]
struct NetworkView {
    name: String,
    subnet: String,
    gateway: String,
    dns: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subnet6: Option<String>,
    internal: bool,
    pid: u32,
    members: Vec<MemberInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ports: Option<Vec<Entry>>,
}

/// Runs the command; returns the text for stdout.
pub fn execute(cmd: &NetworkCommand) -> Result<String, NetworkError> {
    match cmd {
        NetworkCommand::Create(spec) => {
            let rec = daemon::create(spec)?;
            let v6 = if rec.ipv6 {
                rec.subnet()
                    .map(|s| format!(", {}/64", ipam::v6_prefix_for(s)))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            Ok(format!(
                "created network {} ({}{v6}{})\n",
                rec.name,
                rec.subnet,
                if rec.internal { ", internal" } else { "" }
            ))
        }
        NetworkCommand::List { json } => list(*json),
        NetworkCommand::Inspect { name, json } => inspect(name, *json),
        NetworkCommand::Remove { names, force } => {
            let mut out = String::new();
            for name in names {
                remove(name, *force)?;
                let _ = writeln!(out, "removed network {name}");
            }
            Ok(out)
        }
        NetworkCommand::Attach {
            network,
            request,
            json,
        } => {
            let sock = existing(network)?;
            let reply = client::request(
                &sock,
                &ClientRequest::Attach(request.clone()),
                ATTACH_TIMEOUT,
            )
            .map_err(|e| api_error(network, e))?;
            let m: MemberInfo = reply
                .get("member")
                .and_then(|m| MemberInfo::deserialize(m).ok())
                .ok_or_else(|| ReplyError::Malformed(reply.to_string()))?;
            if *json {
                return Ok(format!(
                    "{}\n",
                    serde_json::to_string(&m).unwrap_or_default()
                ));
            }
            Ok(format!(
                "attached {} to network {network} as {}{} on {}\n",
                m.name.as_deref().unwrap_or("the namespace"),
                m.ipv4,
                m.ipv6.map(|a| format!(" and {a}")).unwrap_or_default(),
                m.tap
            ))
        }
        NetworkCommand::Detach { network, member } => {
            let sock = existing(network)?;
            client::request(
                &sock,
                &ClientRequest::Detach(member.clone()),
                client::TIMEOUT,
            )
            .map_err(|e| api_error(network, e))?;
            let who = match member {
                MemberRef::Name(n) => n.clone(),
                MemberRef::Pid(p) => format!("PID {p}"),
            };
            Ok(format!("detached {who} from network {network}\n"))
        }
    }
}

pub(super) fn api_error(network: &str, e: ClientError) -> NetworkError {
    match e {
        // "bad request: VERB: why" → "network NAME: why".
        ClientError::Reply(reply) => {
            let desc = reply.to_string();
            NetworkError::Refused {
                network: network.to_string(),
                reason: desc
                    .strip_prefix("bad request: ")
                    .and_then(|r| r.split_once(": "))
                    .map_or(desc.clone(), |(_, why)| why.to_string()),
            }
        }
        other => NetworkError::Unreachable {
            network: network.to_string(),
            reason: other.to_string(),
        },
    }
}

/// The socket of a live network, or the error saying there is none.
fn existing(name: &str) -> Result<PathBuf, NetworkError> {
    existing_record(name).map(|(sock, _)| sock)
}

/// The socket and record of a live network.
pub(super) fn existing_record(name: &str) -> Result<(PathBuf, Record), NetworkError> {
    let sock = daemon::socket_of(name)?;
    let dir = registry::runtime_dir()?;
    registry::live(&dir)
        .into_iter()
        .find(|r| r.name == name)
        .map(|r| (sock, r))
        .ok_or_else(|| NetworkError::Missing(name.to_string()))
}

fn members_of(rec: &Record, dir: &Path) -> Result<Vec<MemberInfo>, NetworkError> {
    let reply = client::request(
        &registry::socket_path(dir, &rec.name),
        &ClientRequest::ListAttached,
        client::TIMEOUT,
    )
    .map_err(|e| api_error(&rec.name, e))?;
    reply
        .get("members")
        .and_then(|m| Vec::<MemberInfo>::deserialize(m).ok())
        .ok_or_else(|| ReplyError::Malformed(reply.to_string()).into())
}

fn view(rec: &Record, dir: &Path, ports: bool) -> Result<NetworkView, NetworkError> {
    let subnet = rec
        .subnet()
        .ok_or_else(|| NetworkError::BadRecord(rec.name.clone()))?;
    let plan = ipam::plan_for(subnet, rec.ipv6);
    let ports = if ports {
        let reply = client::request(
            &registry::socket_path(dir, &rec.name),
            &ClientRequest::ListHostfwd,
            client::TIMEOUT,
        )
        .map_err(|e| api_error(&rec.name, e))?;
        Some(reply_entries(&reply)?)
    } else {
        None
    };
    Ok(NetworkView {
        name: rec.name.clone(),
        subnet: rec.subnet.clone(),
        gateway: plan.gateway4.to_string(),
        dns: plan.dns4.to_string(),
        subnet6: plan.v6.map(|v| format!("{}/{}", v.prefix, v.prefix_len)),
        internal: rec.internal,
        pid: rec.pid,
        members: members_of(rec, dir)?,
        ports,
    })
}

fn list(json: bool) -> Result<String, NetworkError> {
    let dir = registry::runtime_dir()?;
    let views: Vec<NetworkView> = registry::live(&dir)
        .iter()
        .map(|r| view(r, &dir, false))
        .collect::<Result<_, _>>()?;
    if json {
        return Ok(format!(
            "{}\n",
            serde_json::to_string(&views).unwrap_or_default()
        ));
    }
    let mut out = format!(
        "{:<20} {:<16} {:<22} {:>7}  {}\n",
        "NAME", "SUBNET", "SUBNET6", "MEMBERS", "FLAGS"
    );
    for v in &views {
        let _ = writeln!(
            out,
            "{:<20} {:<16} {:<22} {:>7}  {}",
            v.name,
            v.subnet,
            v.subnet6.as_deref().unwrap_or("-"),
            v.members.len(),
            if v.internal { "internal" } else { "" }
        );
    }
    Ok(out)
}

fn inspect(name: &str, json: bool) -> Result<String, NetworkError> {
    let (_, rec) = existing_record(name)?;
    let dir = registry::runtime_dir()?;
    let v = view(&rec, &dir, true)?;
    if json {
        return Ok(format!(
            "{}\n",
            serde_json::to_string(&v).unwrap_or_default()
        ));
    }
    let mut out = String::new();
    let _ = writeln!(out, "network {} (daemon PID {})", v.name, v.pid);
    let _ = writeln!(
        out,
        "  subnet {}  gateway {}  dns {}{}",
        v.subnet,
        v.gateway,
        v.dns,
        if v.internal { "  internal" } else { "" }
    );
    if let Some(s6) = &v.subnet6 {
        let _ = writeln!(out, "  subnet6 {s6}");
    }
    let _ = writeln!(out, "members: {}", v.members.len());
    for m in &v.members {
        let _ = writeln!(
            out,
            "  {:<16} {:<15} {:<24} {} {}{}{}{}",
            m.name.as_deref().unwrap_or("-"),
            m.ipv4,
            m.ipv6.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
            m.mac,
            m.tap,
            m.bridge_port
                .as_deref()
                .map(|p| format!(" (veth, bridge port {p})"))
                .unwrap_or_default(),
            m.pid.map(|p| format!(" pid {p}")).unwrap_or_default(),
            if m.aliases.is_empty() {
                String::new()
            } else {
                format!(" aliases {}", m.aliases.join(","))
            }
        );
    }
    let ports = v.ports.unwrap_or_default();
    let _ = writeln!(out, "ports: {}", ports.len());
    for e in &ports {
        let host = if e.host_addr.is_empty() {
            "*"
        } else {
            &e.host_addr
        };
        let range = |a: u16, b: Option<u16>| match b {
            Some(b) => format!("{a}-{b}"),
            None => a.to_string(),
        };
        let _ = writeln!(
            out,
            "  {:>4} {}:{} -> {}:{}/{}",
            e.id,
            host,
            range(e.host_port, e.host_port_end),
            e.guest_addr,
            range(e.guest_port, e.guest_port_end),
            e.proto
        );
    }
    Ok(out)
}

/// Stop a network's daemon and wait until it is gone.
fn remove(name: &str, force: bool) -> Result<(), NetworkError> {
    let (sock, rec) = existing_record(name)?;
    let dir = registry::runtime_dir()?;
    // Held before asking, so the daemon cannot exit unseen.
    let pidfd = i32::try_from(rec.pid)
        .ok()
        .and_then(|pid| crate::sys::os::pidfd_open(pid).ok());
    client::request(&sock, &ClientRequest::Shutdown { force }, client::TIMEOUT)
        .map_err(|e| api_error(name, e))?;
    if let Some(fd) = pidfd
        && !crate::sys::os::pidfd_wait(&fd, STOP_TIMEOUT)
    {
        return Err(NetworkError::Unreachable {
            network: name.to_string(),
            reason: format!(
                "its daemon did not stop within {} s",
                STOP_TIMEOUT.as_secs()
            ),
        });
    }
    registry::remove(&dir, name);
    Ok(())
}
