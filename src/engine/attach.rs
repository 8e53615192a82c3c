//! Members coming and going without the loop waiting for them.
//!
//! Attaching needs a TAP created inside the member's namespace, which takes
//! a forked agent; detaching closes the member's TAP, and closing its last
//! fd deletes the device, which waits for the kernel's network stack. Both
//! are [`Job`]s here, watched through the child's pidfd:
//! - [`Dp::attach`] checks the request, reserves the member's addresses and
//!   names, starts the agent and returns; [`Dp::job_done`] finishes the
//!   attach and answers the client when the agent has exited (or answers an
//!   error once [`AGENT_DEADLINE_US`] has passed, and kills it).
//! - [`Dp::close_aside`] hands a TAP to a forked helper that holds the last
//!   reference. API answers given meanwhile wait until the TAPs closed
//!   before them are gone ([`Dp::answer`]), so the API never shows a state
//!   in which a member has left but its TAP is still there.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use mio::unix::SourceFd;
use mio::{Interest, Registry};
use slab::Slab;
use smoltcp::wire::EthernetAddress;
use thiserror::Error;

use super::Dp;
use crate::api::{self, ApiError, AttachRequest, MemberInfo, Verb};
use crate::event::{Kind, token};
use crate::forward::publish::ForwardError;
use crate::forward::{PublishSpec, SpecError};
use crate::model::ipam::Lease;
use crate::model::member::Member;
use crate::stack::TapOut;
use crate::sys::helper::{self, Helper};
use crate::sys::member_tap::{self, TapSpec};
use crate::sys::ns::{self, Agent, NsError, NsHandles};
use crate::sys::tap::Tap;

/// How long an attach may wait for its namespace agent. Creating a TAP
/// takes milliseconds; this bounds an agent stuck in the namespace, and is
/// below the 30 s `rlnet attach` waits, so the caller hears why.
pub(super) const AGENT_DEADLINE_US: i64 = 20_000_000;

/// Why an attach was refused. The texts are the API's `desc`.
#[derive(Debug, Error)]
pub(super) enum AttachError {
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

/// An attach waiting for the agent that creates the member's TAP.
pub(super) struct Pending {
    /// The API client to answer; None once it was answered (the deadline
    /// passed, the network shut down) and only the agent is left to reap.
    client: Option<usize>,
    req: AttachRequest,
    specs: Vec<PublishSpec>,
    lease: Lease,
    netns: (u64, u64),
    /// PID mode: the member's process.
    pidfd: Option<OwnedFd>,
    agent: Agent,
    deadline: i64,
    /// A kernel member: its port on the network's bridge (the agent makes
    /// a veth there instead of a TAP).
    bridge_port: Option<String>,
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

/// Work going on beside the loop, watched through a child's pidfd.
pub(super) enum Job {
    Attach(Box<Pending>),
    /// A helper closing a TAP, the `seq`th TAP closed.
    Close {
        helper: Helper,
        seq: u64,
    },
    /// An agent taking a kernel member's port and guard off the bridge.
    Cleanup(Agent),
}

impl Job {
    fn pidfd(&self) -> &OwnedFd {
        match self {
            Job::Attach(p) => p.agent.pidfd(),
            Job::Close { helper, .. } => helper.pidfd(),
            Job::Cleanup(agent) => agent.pidfd(),
        }
    }
}

/// The jobs in flight (the slab index is the token index of the pidfd),
/// and the answers waiting for TAPs to close.
#[derive(Default)]
pub(super) struct Jobs {
    jobs: Slab<Job>,
    /// TAPs handed to helpers so far.
    closed: u64,
    /// (client, body, the last TAP closed before it): sent once that TAP
    /// and every one closed before it is gone.
    waiting: Vec<(usize, Vec<u8>, u64)>,
}

impl Jobs {
    /// The oldest TAP still being closed.
    fn oldest_close(&self) -> Option<u64> {
        self.jobs
            .iter()
            .filter_map(|(_, j)| match j {
                Job::Close { seq, .. } => Some(*seq),
                Job::Attach(_) | Job::Cleanup(_) => None,
            })
            .min()
    }

    pub fn next_deadline(&self) -> Option<i64> {
        self.attaches().map(|p| p.deadline).min()
    }

    /// The attaches whose client still waits.
    fn attaches(&self) -> impl Iterator<Item = &Pending> {
        self.jobs.iter().filter_map(|(_, j)| match j {
            Job::Attach(p) if p.client.is_some() => Some(&**p),
            _ => None,
        })
    }

    /// Is `name` reserved by an attach in flight?
    pub fn name_taken(&self, name: &str) -> bool {
        self.attaches().any(|p| p.names().any(|n| n == name))
    }

    fn has_netns(&self, netns: (u64, u64)) -> bool {
        self.attaches().any(|p| p.netns == netns)
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

pub(super) fn member_info(m: &Member) -> MemberInfo {
    MemberInfo {
        name: m.name.clone(),
        aliases: m.aliases.clone(),
        ipv4: m.ip4,
        ipv6: m.ip6,
        mac: crate::wire::mac_text(m.mac),
        tap: m.tap.clone(),
        pid: m.pid,
        bridge_port: m.bridge_port.clone(),
    }
}

impl Dp {
    /// Watch `job`'s pidfd; returns its index. A job that cannot be watched
    /// is dropped (its child killed and reaped).
    fn add_job(&mut self, job: Job, registry: &Registry) -> std::io::Result<usize> {
        let idx = self.jobs.jobs.vacant_key();
        registry.register(
            &mut SourceFd(&job.pidfd().as_raw_fd()),
            token(Kind::Job, idx),
            Interest::READABLE,
        )?;
        Ok(self.jobs.jobs.insert(job))
    }

    /// Put a namespace on this named network: everything but the TAP, which
    /// an agent creates; [`Self::job_done`] finishes the attach.
    pub(super) fn attach(
        &mut self,
        client: usize,
        req: AttachRequest,
        registry: &Registry,
    ) -> Result<(), AttachError> {
        let Some(sw) = self.switch.as_mut() else {
            return Err(AttachError::NotANetwork);
        };
        let jobs = &self.jobs;
        let taken = |n: &String| sw.name_taken(n) || jobs.name_taken(n);
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
        let started =
            self.start_agent(&req, &lease)
                .and_then(|(handles, netns, agent, bridge_port)| {
                    let pending = Pending {
                        client: Some(client),
                        req,
                        specs,
                        lease,
                        netns,
                        pidfd: handles.pidfd,
                        agent,
                        deadline: self.now.total_micros() + AGENT_DEADLINE_US,
                        bridge_port,
                    };
                    self.add_job(Job::Attach(Box::new(pending)), registry)
                        .map_err(AttachError::Watch)
                });
        if started.is_err() {
            self.release(lease.ip4);
        }
        started.map(|_| ())
    }

    fn release(&mut self, ip4: std::net::Ipv4Addr) {
        if let Some(sw) = self.switch.as_mut() {
            sw.ipam.release(ip4);
        }
    }

    /// Open the namespaces `req` names, check they are not on the network
    /// yet, and start the agent that makes the TAP (or, for a namespace
    /// made under the network's own user namespace, the veth on its bridge,
    /// whose port name comes back too).
    #[allow(clippy::type_complexity)]
    fn start_agent(
        &mut self,
        req: &AttachRequest,
        lease: &Lease,
    ) -> Result<(NsHandles, (u64, u64), Agent, Option<String>), AttachError> {
        let handles = open_target(req)?;
        let netns = handles.net_id().map_err(AttachError::Namespace)?;
        let on_it =
            self.switch.as_ref().is_some_and(|s| s.has_netns(netns)) || self.jobs.has_netns(netns);
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
        if let Some(k) = self.kernel.as_mut().filter(|k| k.owns(&handles)) {
            let port = k.next_port();
            let net = handles.net.try_clone().map_err(AttachError::Watch)?;
            let agent = k.start_attach(net, port.clone(), spec)?;
            return Ok((handles, netns, agent, Some(port)));
        }
        let agent = member_tap::start(&handles, spec)?;
        Ok((handles, netns, agent, None))
    }

    /// The child of job `idx` has exited: finish the job.
    pub(super) fn job_done(&mut self, idx: usize, registry: &Registry) {
        let answer = match self.jobs.jobs.get_mut(idx) {
            None => return,
            Some(Job::Attach(p)) => match p.agent.try_finish() {
                Some(answer) => Some(answer),
                None => return,
            },
            Some(Job::Close { helper, .. }) => match helper.try_reap() {
                Some(_) => None,
                None => return,
            },
            Some(Job::Cleanup(agent)) => match agent.try_finish() {
                Some(Err(e)) => {
                    crate::limited!(Warn, "kernel member cleanup: {e}");
                    None
                }
                Some(Ok(_)) => None,
                None => return,
            },
        };
        let job = self.jobs.jobs.remove(idx);
        let _ = registry.deregister(&mut SourceFd(&job.pidfd().as_raw_fd()));
        match (job, answer) {
            (Job::Attach(p), Some(answer)) => self.attach_done(*p, answer, registry),
            _ => self.release_answers(),
        }
    }

    /// Answer `client` once the TAPs closed so far are gone (at once when
    /// none is being closed).
    pub(super) fn answer(&mut self, client: usize, body: Vec<u8>) {
        if self.jobs.oldest_close().is_some() {
            let last = self.jobs.closed;
            self.jobs.waiting.push((client, body, last));
        } else {
            self.answers.push((client, body));
        }
    }

    /// Send what no longer waits for a TAP to close.
    fn release_answers(&mut self) {
        let oldest = self.jobs.oldest_close();
        let (ready, wait) = std::mem::take(&mut self.jobs.waiting)
            .into_iter()
            .partition(|(_, _, last)| oldest.is_none_or(|o| *last < o));
        self.jobs.waiting = wait;
        self.answers
            .extend(ready.into_iter().map(|(client, body, _)| (client, body)));
    }

    /// Wait for every TAP being closed (the network stops), and release
    /// the answers that waited for them.
    pub(super) fn finish_closes(&mut self, registry: &Registry) {
        let closing: Vec<usize> = self
            .jobs
            .jobs
            .iter()
            .filter(|(_, j)| matches!(j, Job::Close { .. }))
            .map(|(i, _)| i)
            .collect();
        for idx in closing {
            if let Job::Close { mut helper, .. } = self.jobs.jobs.remove(idx) {
                let _ = registry.deregister(&mut SourceFd(&helper.pidfd().as_raw_fd()));
                let _ = helper.wait();
            }
        }
        self.release_answers();
    }

    /// The agent of attach `p` answered.
    fn attach_done(&mut self, p: Pending, answer: ns::AgentAnswer, registry: &Registry) {
        let Some(client) = p.client else {
            // Answered already (too late): only its TAP is left to close,
            // or its port on the bridge to remove.
            if let Some(port) = &p.bridge_port {
                self.cleanup_kernel(port, registry);
            } else if let Ok((fd, _)) = answer {
                self.close_aside(fd, registry);
            }
            return;
        };
        let ip4 = p.lease.ip4;
        let tap = match &p.bridge_port {
            Some(port) => self.kernel_link(port, answer, registry),
            None => member_tap::tap_from(answer),
        };
        let body = match tap {
            Ok(tap) => match self.add_member(p, tap, registry) {
                Ok(info) => api::attach_body(&info),
                Err(e) => ApiError::failed(Verb::Attach, e).body(),
            },
            Err(e) => {
                self.release(ip4);
                ApiError::failed(Verb::Attach, AttachError::Agent(e)).body()
            }
        };
        self.answer(client, body);
    }

    /// The member's TAP exists: give it a port, its addresses, its names
    /// and its published ports. On failure the member is detached again.
    fn add_member(
        &mut self,
        p: Pending,
        tap: Tap,
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
            bridge_port: p.bridge_port.clone(),
        };
        let port = self
            .outs
            .insert(TapOut::new(Box::new(tap), Some(mac), self.mtu));
        let tapfd = self.outs[port].link().as_raw_fd();
        // A kernel member's frames are read from the uplink.
        let interest = if p.bridge_port.is_some() {
            Interest::WRITABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        let _ = registry.register(&mut SourceFd(&tapfd), token(Kind::Tap, port), interest);
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
            .jobs
            .jobs
            .iter()
            .filter(|(_, j)| matches!(j, Job::Attach(p) if p.client.is_some() && p.deadline <= now))
            .map(|(i, _)| i)
            .collect();
        for idx in late {
            self.give_up(idx, AttachError::Late);
        }
    }

    /// Refuse the attaches in flight: the network is shutting down.
    pub(super) fn refuse_attaches(&mut self) {
        let network = self.switch.as_ref().map(|s| s.name.clone());
        let waiting: Vec<usize> = self.jobs.jobs.iter().map(|(i, _)| i).collect();
        for idx in waiting {
            let why = AttachError::ShuttingDown(network.clone().unwrap_or_default());
            self.give_up(idx, why);
        }
    }

    /// Refuse attach `idx` with `why`, free what it reserved and kill its
    /// agent; the job stays until the agent is reaped.
    fn give_up(&mut self, idx: usize, why: AttachError) {
        let Some(Job::Attach(p)) = self.jobs.jobs.get_mut(idx) else {
            return;
        };
        let Some(client) = p.client.take() else {
            return;
        };
        p.agent.kill();
        p.pidfd = None;
        let ip4 = p.lease.ip4;
        log::warn!("attach of {:?} abandoned: {why}", p.req.name);
        self.release(ip4);
        let body = ApiError::failed(Verb::Attach, why).body();
        self.answer(client, body);
    }

    /// A kernel member's agent answered: on success, the member's writer
    /// (another handle on the uplink); on failure its port is cleaned up.
    fn kernel_link(
        &mut self,
        port: &str,
        answer: ns::AgentAnswer,
        registry: &Registry,
    ) -> Result<Tap, NsError> {
        let link = answer.and_then(|_| {
            let k = self
                .kernel
                .as_ref()
                .ok_or(NsError::Agent("no bridge".into()))?;
            k.member_link()
                .map_err(|e| NsError::Agent(format!("cannot open the uplink again: {e}")))
        });
        if link.is_err() {
            self.cleanup_kernel(port, registry);
        }
        link
    }

    /// Take kernel member `port` off the bridge, beside the loop.
    pub(super) fn cleanup_kernel(&mut self, port: &str, registry: &Registry) {
        let Some(k) = self.kernel.as_ref() else {
            return;
        };
        match k.start_cleanup(port) {
            Ok(agent) => {
                let _ = self.add_job(Job::Cleanup(agent), registry);
            }
            Err(e) => crate::limited!(Warn, "cannot remove bridge port {port}: {e}"),
        }
    }

    /// Drop `owner` (a member's TAP) with the kernel's teardown done by a
    /// helper (here, if none can be had).
    pub(super) fn close_aside<T>(&mut self, owner: T, registry: &Registry) {
        let Some(helper) = helper::drop_aside(owner) else {
            crate::limited!(Debug, "no helper: a TAP was closed on the loop");
            return;
        };
        self.jobs.closed += 1;
        let seq = self.jobs.closed;
        // One that cannot be watched is waited for (dropped) here.
        let _ = self.add_job(Job::Close { helper, seq }, registry);
    }
}
