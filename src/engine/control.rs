//! The API verbs, carried out on the loop: published ports, status, and a
//! named network's members (attach, detach, list, shutdown).
//!
//! Attaching needs a TAP created inside the member's namespace, which takes
//! a forked agent. The loop never waits for it: [`Dp::execute`] checks the
//! request, reserves the member's addresses and names, starts the agent and
//! answers [`Answer::Later`]; the agent's pidfd wakes the loop when it is
//! done, and the client gets its answer then (or an error once
//! [`AGENT_DEADLINE_US`] has passed).

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use mio::unix::SourceFd;
use mio::{Interest, Registry};
use slab::Slab;
use smoltcp::wire::EthernetAddress;
use thiserror::Error;

use super::Dp;
use crate::api::{self, ApiError, AttachRequest, MemberInfo, Request, Verb};
use crate::event::{Kind, token};
use crate::forward::PublishSpec;
use crate::forward::publish::ForwardError;
use crate::forward::spec::SpecError;
use crate::model::ipam::Lease;
use crate::model::member::Member;
use crate::stack::{TapOut, TxStats};
use crate::sys::member_tap::{self, TapSpec};
use crate::sys::ns::{self, Agent, NsError, NsHandles};
use crate::wire;

/// How long an attach may wait for its namespace agent. Creating a TAP
/// takes milliseconds; this bounds an agent stuck in the namespace, and is
/// below the 30 s `rlnet attach` waits, so the caller hears why.
pub(super) const AGENT_DEADLINE_US: i64 = 20_000_000;

/// Why an attach was refused. The texts are the API's `desc`.
#[derive(Debug, Error)]
enum AttachError {
    #[error(
        "this rlnet serves one namespace; attach works on named networks (rlnet network create)"
    )]
    NotANetwork,
    #[error("the name {name:?} is already taken on network {network}")]
    NameTaken { name: String, network: String },
    #[error("{spec:?}: {err}")]
    Spec { spec: String, err: SpecError },
    #[error("network {0} is full")]
    Full(String),
    #[error("give the pid (or netns) of the namespace to attach")]
    NoTarget,
    #[error("{0}")]
    Namespace(nix::Error),
    #[error("cannot watch the namespace agent: {0}")]
    Watch(std::io::Error),
    #[error("that namespace is already on network {0}")]
    AlreadyOn(String),
    #[error(transparent)]
    Agent(#[from] NsError),
    #[error("the namespace agent did not answer within {} s", AGENT_DEADLINE_US / 1_000_000)]
    Late,
    #[error("network {0} is shutting down")]
    ShuttingDown(String),
    #[error(transparent)]
    Publish(#[from] ForwardError),
}

/// When a request's answer is ready.
pub(super) enum Answer {
    Now(Vec<u8>),
    /// It comes through `Dp::answers` (an attach waiting for its agent).
    Later,
}

/// An attach waiting for the agent that creates the member's TAP.
struct Pending {
    /// The API client to answer; None once it was answered (the deadline
    /// passed) and only the agent is left to reap.
    client: Option<usize>,
    req: AttachRequest,
    specs: Vec<PublishSpec>,
    lease: Lease,
    netns: (u64, u64),
    /// PID mode: the member's process.
    pidfd: Option<OwnedFd>,
    agent: Agent,
    deadline: i64,
}

impl Pending {
    fn names(&self) -> impl Iterator<Item = &str> {
        self.req
            .name
            .iter()
            .chain(self.req.aliases.iter())
            .map(String::as_str)
    }
}

/// The attaches in flight; the slab index is the agent's token index.
#[derive(Default)]
pub(super) struct Attaching(Slab<Pending>);

impl Attaching {
    pub fn next_deadline(&self) -> Option<i64> {
        self.live().map(|p| p.deadline).min()
    }

    /// The attaches whose client still waits.
    fn live(&self) -> impl Iterator<Item = &Pending> {
        self.0.iter().map(|(_, p)| p).filter(|p| p.client.is_some())
    }
}

fn describe_member(m: &MemberInfo) -> String {
    m.name.clone().unwrap_or_else(|| m.ipv4.to_string())
}

fn member_info(m: &Member) -> MemberInfo {
    MemberInfo {
        name: m.name.clone(),
        aliases: m.aliases.clone(),
        ipv4: m.ip4,
        ipv6: m.ip6,
        mac: wire::mac_text(m.mac),
        tap: m.tap.clone(),
        pid: m.pid,
    }
}

/// The namespaces an attach request names.
fn open_target(req: &AttachRequest) -> Result<NsHandles, AttachError> {
    let opened = match (req.pid, &req.netns) {
        (Some(pid), _) => ns::open_pid(pid),
        (None, Some(path)) => ns::open_path(Path::new(path), req.userns.as_deref().map(Path::new)),
        (None, None) => return Err(AttachError::NoTarget),
    };
    Ok(opened?)
}

impl Dp {
    /// Carry out an API request from `client`.
    pub(super) fn execute(
        &mut self,
        client: usize,
        req: Result<Request, ApiError>,
        registry: &Registry,
    ) -> Answer {
        let req = match req {
            Ok(r) => r,
            Err(e) => return Answer::Now(e.body()),
        };
        let verb = req.verb();
        let fail = |e: ForwardError| match e {
            ForwardError::Table(t) => ApiError::from_table(verb, &t).body(),
            other => ApiError::failed(verb, other).body(),
        };
        let plan = self.policy.plan;
        Answer::Now(match req {
            Request::AddHostfwd { spec, guest } => {
                let (ctx, _, fwd) = self.split(registry);
                let mode = fwd.default_mode();
                match fwd.publish(std::slice::from_ref(&spec), mode, guest, &ctx) {
                    Ok(ids) => api::ok_id(ids.first().copied().unwrap_or(0)),
                    Err(e) => fail(e),
                }
            }
            Request::ListHostfwd => api::list_body(self.fwd.table.rules(), &plan),
            Request::RemoveHostfwd { id } => match self.unpublish(&[id], registry) {
                Ok(()) => api::ok_empty(),
                Err(_) => ApiError::RemoveHostfwdId.body(),
            },
            Request::AddPublish { specs, mode, to } => match self.guest_for(to.as_deref()) {
                Ok(guest) => {
                    let (ctx, _, fwd) = self.split(registry);
                    let mode = mode.unwrap_or(fwd.default_mode());
                    match fwd.publish(&specs, mode, guest, &ctx) {
                        Ok(ids) => api::ok_ids(&ids),
                        Err(e) => fail(e),
                    }
                }
                Err(reason) => ApiError::failed(verb, reason).body(),
            },
            Request::RemovePublish { ids } => match self.unpublish(&ids, registry) {
                Ok(()) => api::ok_empty(),
                Err(e) => fail(e),
            },
            Request::Status => api::status_body(&self.status()),
            Request::Attach(req) => match self.attach(client, req, registry) {
                Ok(()) => return Answer::Later,
                Err(e) => ApiError::failed(verb, e).body(),
            },
            Request::Detach(who) => match self.switch.as_ref().and_then(|s| s.find(&who)) {
                Some(p) => {
                    self.detach(p, registry);
                    api::ok_empty()
                }
                None => ApiError::failed(verb, format!("no such member: {who:?}")).body(),
            },
            Request::ListAttached => api::members_body(&self.member_infos()),
            Request::Shutdown { force } => self.shutdown(force, registry),
        })
    }

    fn unpublish(
        &mut self,
        ids: &[crate::forward::table::RuleId],
        registry: &Registry,
    ) -> Result<(), ForwardError> {
        let (ctx, _, fwd) = self.split(registry);
        fwd.unpublish(ids, &ctx)
    }

    /// Where `add_publish` sends its ports: the one namespace, or on a
    /// named network the member `to` names.
    fn guest_for(&self, to: Option<&str>) -> Result<Option<IpAddr>, String> {
        match (to, &self.switch) {
            (None, None) => Ok(None),
            (Some(name), None) => Err(format!(
                "no member named {name:?}: this namespace is not on a named network"
            )),
            (None, Some(_)) => Err(
                "on a named network, say which member the ports go to (\"to\": NAME, or --to NAME)"
                    .into(),
            ),
            (Some(name), Some(sw)) => match sw.address_of(name) {
                Some(ip) => Ok(Some(ip)),
                None => Err(format!("no member named {name:?} on this network")),
            },
        }
    }

    /// Stop the network: refused while it has members, unless `force`.
    /// Attaches still waiting for their agent are refused.
    fn shutdown(&mut self, force: bool, registry: &Registry) -> Vec<u8> {
        if self.switch.as_ref().is_some_and(|s| !s.is_empty()) && !force {
            let names: Vec<String> = self.member_infos().iter().map(describe_member).collect();
            let reason = format!(
                "the network has {} member(s) ({}): detach them first, or force it",
                names.len(),
                names.join(", ")
            );
            return ApiError::failed(Verb::Shutdown, reason).body();
        }
        let ports: Vec<usize> = self
            .switch
            .iter()
            .flat_map(|s| s.members())
            .map(|(p, _)| p)
            .collect();
        for p in ports {
            self.detach(p, registry);
        }
        let network = self
            .switch
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let waiting: Vec<usize> = self.attaching.0.iter().map(|(i, _)| i).collect();
        for idx in waiting {
            self.give_up(idx, AttachError::ShuttingDown(network.clone()));
        }
        self.shutdown = true;
        api::ok_empty()
    }

    pub(super) fn member_infos(&self) -> Vec<MemberInfo> {
        let mut v: Vec<MemberInfo> = self
            .switch
            .iter()
            .flat_map(|s| s.members())
            .map(|(_, m)| member_info(m))
            .collect();
        v.sort_by_key(|m| m.ipv4);
        v
    }

    /// Put a namespace on this named network: everything but the TAP, which
    /// an agent creates; [`Self::agent_done`] finishes the job.
    fn attach(
        &mut self,
        client: usize,
        req: AttachRequest,
        registry: &Registry,
    ) -> Result<(), AttachError> {
        let Some(sw) = self.switch.as_mut() else {
            return Err(AttachError::NotANetwork);
        };
        let attaching = &self.attaching;
        let taken =
            |n: &String| sw.name_taken(n) || attaching.live().any(|p| p.names().any(|x| x == n));
        if let Some(n) = req.name.iter().chain(req.aliases.iter()).find(|n| taken(n)) {
            return Err(AttachError::NameTaken {
                name: n.clone(),
                network: sw.name.clone(),
            });
        }
        let specs = req
            .publish
            .iter()
            .map(|t| {
                t.parse::<PublishSpec>().map_err(|err| AttachError::Spec {
                    spec: t.clone(),
                    err,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let lease = sw
            .ipam
            .allocate()
            .ok_or_else(|| AttachError::Full(sw.name.clone()))?;
        let started = self.start_agent(&req, &lease);
        let (mut handles, netns, agent) = match started {
            Ok(s) => s,
            Err(e) => {
                if let Some(sw) = self.switch.as_mut() {
                    sw.ipam.release(lease.ip4);
                }
                return Err(e);
            }
        };
        let idx = self.attaching.0.vacant_key();
        // An agent that cannot be watched is killed and reaped on drop.
        registry
            .register(
                &mut SourceFd(&agent.pidfd().as_raw_fd()),
                token(Kind::Agent, idx),
                Interest::READABLE,
            )
            .map_err(|e| {
                if let Some(sw) = self.switch.as_mut() {
                    sw.ipam.release(lease.ip4);
                }
                AttachError::Watch(e)
            })?;
        self.attaching.0.insert(Pending {
            client: Some(client),
            req,
            specs,
            lease,
            netns,
            pidfd: handles.pidfd.take(),
            agent,
            deadline: self.now.total_micros() + AGENT_DEADLINE_US,
        });
        Ok(())
    }

    /// Open the namespaces `req` names, check they are not on the network
    /// yet, and start the agent that makes the TAP.
    fn start_agent(
        &self,
        req: &AttachRequest,
        lease: &Lease,
    ) -> Result<(NsHandles, (u64, u64), Agent), AttachError> {
        let handles = open_target(req)?;
        let netns = handles.net_id().map_err(AttachError::Namespace)?;
        let on_it = self.switch.as_ref().is_some_and(|s| s.has_netns(netns))
            || self.attaching.live().any(|p| p.netns == netns);
        if on_it {
            let name = self.switch.as_ref().map(|s| s.name.clone());
            return Err(AttachError::AlreadyOn(name.unwrap_or_default()));
        }
        let plan = &self.policy.plan;
        let spec = TapSpec {
            mtu: self.mtu,
            mac: lease.mac,
            v4: (lease.ip4, plan.net4.prefix, plan.gateway4),
            v6: match (lease.ip6, plan.v6) {
                (Some(ip6), Some(v6)) => Some((ip6, v6.prefix_len, v6.gateway6)),
                _ => None,
            },
        };
        let agent = member_tap::start(&handles, spec)?;
        Ok((handles, netns, agent))
    }

    /// Agent `idx` has exited: finish its attach and answer the client.
    pub(super) fn agent_done(&mut self, idx: usize, registry: &Registry) {
        let Some(p) = self.attaching.0.get_mut(idx) else {
            return;
        };
        let Some(answer) = p.agent.try_finish() else {
            return;
        };
        let p = self.attaching.0.remove(idx);
        let _ = registry.deregister(&mut SourceFd(&p.agent.pidfd().as_raw_fd()));
        let Some(client) = p.client else {
            // Answered already (too late); the agent is reaped now.
            return;
        };
        let body = match member_tap::tap_from(answer) {
            Ok(tap) => self.add_member(p, tap, registry),
            Err(e) => {
                if let Some(sw) = self.switch.as_mut() {
                    sw.ipam.release(p.lease.ip4);
                }
                Err(AttachError::Agent(e))
            }
        };
        let body = match body {
            Ok(info) => api::attach_body(&info),
            Err(e) => ApiError::failed(Verb::Attach, e).body(),
        };
        self.answers.push((client, body));
    }

    /// The member's TAP exists: give it a port, its addresses, its names
    /// and its published ports.
    fn add_member(
        &mut self,
        p: Pending,
        tap: crate::sys::tap::Tap,
        registry: &Registry,
    ) -> Result<MemberInfo, AttachError> {
        let mac = EthernetAddress(p.lease.mac);
        let member = Member {
            name: p.req.name,
            aliases: p.req.aliases,
            mac,
            ip4: p.lease.ip4,
            ip6: p.lease.ip6,
            tap: tap.name().to_string(),
            pid: p.req.pid,
            netns: p.netns,
        };
        let port = self
            .outs
            .insert(TapOut::new(Box::new(tap), Some(mac), self.mtu));
        let tapfd = self.outs[port].link().as_raw_fd();
        let _ = registry.register(
            &mut SourceFd(&tapfd),
            token(Kind::Tap, port),
            Interest::READABLE | Interest::WRITABLE,
        );
        if let Some(fd) = &p.pidfd {
            let _ = registry.register(
                &mut SourceFd(&fd.as_raw_fd()),
                token(Kind::Member, port),
                Interest::READABLE,
            );
        }
        self.ports_by_ip.insert(IpAddr::V4(member.ip4), port);
        if let Some(ip6) = member.ip6 {
            self.ports_by_ip.insert(IpAddr::V6(ip6), port);
        }
        self.publish_names(&member, true);
        let info = member_info(&member);
        if let Some(sw) = self.switch.as_mut() {
            sw.add(port, member, p.pidfd);
        }
        if !p.specs.is_empty() {
            let mode = self.fwd.default_mode();
            let (ctx, _, fwd) = self.split(registry);
            if let Err(e) = fwd.publish(&p.specs, mode, Some(IpAddr::V4(p.lease.ip4)), &ctx) {
                self.detach(port, registry);
                return Err(e.into());
            }
        }
        log::info!(
            "attached {} as {} on {}",
            info.name.as_deref().unwrap_or("(unnamed)"),
            info.ipv4,
            info.tap
        );
        Ok(info)
    }

    /// Answer attaches whose agent is late, and kill the agent (it is
    /// reaped when its pidfd says it is gone).
    pub(super) fn attach_timers(&mut self) {
        let now = self.now.total_micros();
        let late: Vec<usize> = self
            .attaching
            .0
            .iter()
            .filter(|(_, p)| p.client.is_some() && p.deadline <= now)
            .map(|(i, _)| i)
            .collect();
        for idx in late {
            self.give_up(idx, AttachError::Late);
        }
    }

    /// Refuse attach `idx` with `why`, free what it reserved and kill its
    /// agent; the entry stays until the agent is reaped.
    fn give_up(&mut self, idx: usize, why: AttachError) {
        let Some(p) = self.attaching.0.get_mut(idx) else {
            return;
        };
        let Some(client) = p.client.take() else {
            return;
        };
        p.agent.kill();
        p.pidfd = None;
        let ip4 = p.lease.ip4;
        log::warn!("attach of {:?} abandoned: {why}", p.req.name);
        if let Some(sw) = self.switch.as_mut() {
            sw.ipam.release(ip4);
        }
        self.answers
            .push((client, ApiError::failed(Verb::Attach, why).body()));
    }

    /// Take a member off: its TAP closes (and vanishes from its namespace),
    /// its flows and published ports go, its addresses are free again.
    pub(super) fn detach(&mut self, port: usize, registry: &Registry) {
        let Some(gone) = self.switch.as_mut().and_then(|s| s.remove(port)) else {
            return;
        };
        let member = gone.member;
        self.publish_names(&member, false);
        if let Some(out) = self.outs.try_remove(port) {
            let _ = registry.deregister(&mut SourceFd(&out.link().as_raw_fd()));
        }
        if let Some(fd) = &gone.pidfd {
            let _ = registry.deregister(&mut SourceFd(&fd.as_raw_fd()));
        }
        self.nat.drop_port(port, registry);
        let (ctx, _, fwd) = self.split(registry);
        fwd.unpublish_guest(IpAddr::V4(member.ip4), &ctx);
        self.ports_by_ip.retain(|_, p| *p != port);
        if let Some(sw) = self.switch.as_mut() {
            sw.ipam.release(member.ip4);
        }
        log::info!(
            "detached {} ({})",
            member.name.as_deref().unwrap_or("(unnamed)"),
            member.ip4
        );
    }

    pub(super) fn status(&self) -> api::Status {
        let tx = self.outs.iter().fold(TxStats::default(), |mut t, (_, o)| {
            t.frames += o.stats.frames;
            t.bytes += o.stats.bytes;
            t.dropped += o.stats.dropped;
            t
        });
        api::Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            tap: self
                .outs
                .iter()
                .next()
                .map(|(_, o)| o.link().name().to_string())
                .unwrap_or_default(),
            mtu: self.mtu,
            addresses: api::Addresses::from_plan(&self.policy.plan),
            counters: api::Counters {
                tcp_flows: self.nat.tcp_flows() as u64,
                udp_flows: self.nat.udp_flows() as u64,
                frames_in: self.frames_in,
                frames_out: tx.frames,
                bytes_in: self.bytes_in,
                bytes_out: tx.bytes,
                drops: tx.dropped,
            },
            published: self.fwd.table.len() as u64,
        }
    }
}
