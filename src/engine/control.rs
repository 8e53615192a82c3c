//! The API verbs, carried out on the loop: published ports, status, and a
//! named network's members (attach, detach, list, shutdown). Attaching and
//! closing a member's TAP happen beside the loop (see [`super::attach`]).

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use mio::Registry;
use mio::unix::SourceFd;

use super::Dp;
use super::attach::member_info;
use crate::api::{self, ApiError, MemberInfo, Request, Verb};
use crate::forward::RuleId;
use crate::forward::publish::ForwardError;
use crate::stack::TxStats;

fn describe_member(m: &MemberInfo) -> String {
    m.name.clone().unwrap_or_else(|| m.ipv4.to_string())
}

impl Dp {
    /// Carry out an API request from `client`; its answer goes out through
    /// [`Dp::answer`] (an attach's once its agent is done).
    pub(super) fn execute(
        &mut self,
        client: usize,
        req: Result<Request, ApiError>,
        registry: &Registry,
    ) {
        let body = match req {
            Ok(req) => self.carry_out(client, req, registry),
            Err(e) => Some(e.body()),
        };
        if let Some(body) = body {
            self.answer(client, body);
        }
    }

    /// The answer to `req`; None when it comes later (an attach).
    fn carry_out(&mut self, client: usize, req: Request, registry: &Registry) -> Option<Vec<u8>> {
        let verb = req.verb();
        let fail = |e: ForwardError| match e {
            ForwardError::Table(t) => ApiError::from_table(verb, &t).body(),
            other => ApiError::failed(verb, other).body(),
        };
        let plan = self.policy.plan;
        Some(match req {
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
                Ok(()) => return None,
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
            Request::NetworkUserns => match self.kernel.as_ref().map(|k| k.userns()) {
                Some(Ok(fd)) => {
                    self.answer_fds.push((client, fd));
                    api::ok_empty()
                }
                Some(Err(e)) => ApiError::failed(verb, e).body(),
                None => ApiError::failed(
                    verb,
                    "this network has no kernel switch (see its log for why)",
                )
                .body(),
            },
        })
    }

    fn unpublish(&mut self, ids: &[RuleId], registry: &Registry) -> Result<(), ForwardError> {
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
        self.refuse_attaches();
        // The TAPs are gone when the answer goes out, and the loop ends.
        self.finish_closes(registry);
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
            match &member.bridge_port {
                // Another handle on the uplink: closing it tears nothing down.
                Some(bridge_port) => {
                    drop(out);
                    self.cleanup_kernel(bridge_port, registry);
                }
                None => self.close_aside(out, registry),
            }
        }
        if let Some(fd) = &gone.pidfd {
            let _ = registry.deregister(&mut SourceFd(&fd.as_raw_fd()));
        }
        self.nat.drop_port(port, registry);
        self.frag.drop_port(port);
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
                reassembly_bytes: u64::try_from(self.frag.bytes()).unwrap_or(u64::MAX),
                reassembly_datagrams: u64::try_from(self.frag.len()).unwrap_or(u64::MAX),
                real_address_splices: self.fwd.real_stats().0,
                real_address_fallbacks: self.fwd.real_stats().1,
                read_pauses: self.fwd.read_pauses() + self.nat.read_pauses(),
            },
            published: self.fwd.table.len() as u64,
        }
    }
}
