//! The forwarder's pasta mode (docs/compat.md, "rlnet as pasta"): `-t/-u`
//! lists bound at start (all or nothing per option occurrence, `all` best
//! effort), `-T/-U` listeners on the namespace's loopback, and `auto`,
//! rescanned every second ([`super::super::auto`]).

use std::net::SocketAddr;

use super::{ForwardError, Forwarder, Role, Sock, listen_on};
use crate::event::Ctx;
use crate::forward::auto::{PastaState, Want, slot, wanted};
use crate::forward::ports::{PastaPorts, PortForwards, PortList, Way, loopback};
use crate::forward::spec::{Mode, PortRange, Proto, PublishSpec};

const PROTOS: [Proto; 2] = [Proto::Tcp, Proto::Udp];

/// The lists of an option and whether it is "all" (`PortForwards::All` is
/// the list of every port).
fn lists(f: &PortForwards) -> Vec<PortList> {
    match f {
        PortForwards::All => vec![PortList {
            all: true,
            ..PortList::default()
        }],
        PortForwards::Lists(v) => v.clone(),
        _ => Vec::new(),
    }
}

impl Forwarder {
    /// Set up pasta's forwarding: the socket factory (confined, with the
    /// namespace's tables for `auto`), every fixed list, `all` best effort,
    /// and a first `auto` scan.
    pub fn start_pasta(&mut self, p: PastaPorts, ctx: &Ctx<'_>) -> Result<(), ForwardError> {
        self.splice_loopback = p.splice;
        self.pasta = Some(Box::new(PastaState::new(p.clone())));
        self.start_factory()?;
        for proto in PROTOS {
            for (i, l) in lists(p.get(Way::In, proto)).iter().enumerate() {
                if l.auto {
                    continue;
                }
                if l.all {
                    self.bind_best_effort(l, proto, p.ephemeral, i, ctx)?;
                    continue;
                }
                let specs: Vec<PublishSpec> = l
                    .specs(proto, p.ephemeral)
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect();
                self.publish_on(&specs, Mode::Stack, None, l.ifname.as_deref(), ctx)?;
            }
            for l in lists(p.get(Way::Out, proto)).iter().filter(|l| !l.auto) {
                self.reverse_list(l, proto, p.ephemeral, ctx)?;
            }
        }
        self.rescan(ctx);
        Ok(())
    }

    /// `all` in a `-t/-u` list: every port of the list that can be bound,
    /// as rules of consecutive ports; an error only if none could be.
    fn bind_best_effort(
        &mut self,
        l: &PortList,
        proto: Proto,
        ephemeral: PortRange,
        which: usize,
        ctx: &Ctx<'_>,
    ) -> Result<(), ForwardError> {
        let mut bound = 0usize;
        for (run, ifname) in l.specs(proto, ephemeral) {
            let mut cur: Option<(PublishSpec, Vec<(SocketAddr, Sock)>)> = None;
            for port in run.host_ports.iter() {
                let one = PublishSpec {
                    host_ports: PortRange::single(port),
                    ns_ports: PortRange::single(run.ns_port_for(port).unwrap_or(port)),
                    ..run
                };
                let socks = match self.table.check(&[one], self.unprivileged_start) {
                    Ok(()) => self.bind_port(&one, port, ifname.as_deref()).ok(),
                    Err(_) => None,
                };
                match (socks, cur.as_mut()) {
                    (Some(s), Some((spec, all)))
                        if spec.host_ports.end.checked_add(1) == Some(port) =>
                    {
                        spec.host_ports.end = port;
                        spec.ns_ports.end = one.ns_ports.end;
                        all.extend(s);
                    }
                    (Some(s), _) => {
                        bound += self.insert_run(cur.take(), ctx);
                        cur = Some((one, s));
                    }
                    (None, _) => bound += self.insert_run(cur.take(), ctx),
                }
            }
            bound += self.insert_run(cur, ctx);
        }
        if bound == 0 {
            return Err(ForwardError::NoneBound {
                option: format!(
                    "-{} (list {})",
                    if proto == Proto::Tcp { 't' } else { 'u' },
                    which + 1
                ),
            });
        }
        Ok(())
    }

    /// A run of bound ports as one rule; returns its port count.
    fn insert_run(
        &mut self,
        run: Option<(PublishSpec, Vec<(SocketAddr, Sock)>)>,
        ctx: &Ctx<'_>,
    ) -> usize {
        let Some((spec, socks)) = run else { return 0 };
        let id = self.table.insert(spec, Mode::Stack, None);
        for (local, sock) in socks {
            self.add_listener(Role::Published(id), local, sock, ctx);
        }
        spec.host_ports.len() as usize
    }

    /// A fixed `-T/-U` list (`all`: best effort).
    fn reverse_list(
        &mut self,
        l: &PortList,
        proto: Proto,
        ephemeral: PortRange,
        ctx: &Ctx<'_>,
    ) -> Result<(), ForwardError> {
        let mut bound = 0usize;
        for run in l.runs(ephemeral) {
            for port in run.ports.iter() {
                match self.publish_reverse(proto, port, run.target(port), ctx) {
                    Ok(()) => bound += 1,
                    Err(_) if l.all => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if l.all && bound == 0 {
            return Err(ForwardError::NoneBound {
                option: format!("-{}", if proto == Proto::Tcp { 'T' } else { 'U' }),
            });
        }
        Ok(())
    }

    /// Listen on the namespace's loopback at `port` (each family the link
    /// has), forwarding to the host's loopback at `to`.
    fn publish_reverse(
        &mut self,
        proto: Proto,
        port: u16,
        to: u16,
        ctx: &Ctx<'_>,
    ) -> Result<(), ForwardError> {
        let mut made = Vec::new();
        for v6 in [false, true] {
            if (v6 && self.plan.v6.is_none()) || (!v6 && !self.plan.ipv4()) {
                continue;
            }
            let local = SocketAddr::new(loopback(v6), port);
            let fd = self.ns_socket(v6, proto == Proto::Udp, false)?;
            match listen_on(socket2::Socket::from(fd), proto, local, None) {
                Ok(s) => made.push((local, s, SocketAddr::new(loopback(v6), to))),
                // A namespace without ::1 (IPv6 off inside): IPv4 only.
                Err(e) if v6 && e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
                Err(e) => return Err(super::bind_error(local, proto, e)),
            }
        }
        for (local, sock, target) in made {
            self.add_listener(Role::Reverse { target }, local, sock, ctx);
        }
        Ok(())
    }

    fn unpublish_reverse(&mut self, proto: Proto, port: u16, ctx: &Ctx<'_>) {
        self.remove_listeners(
            |l| {
                matches!(l.role, Role::Reverse { .. })
                    && l.local.port() == port
                    && matches!(
                        (&l.sock, proto),
                        (Sock::Tcp(_), Proto::Tcp) | (Sock::Udp(_), Proto::Udp)
                    )
            },
            ctx,
        );
    }

    /// Ports of the listeners of one protocol: host ones (rules) or the
    /// namespace's (reverse).
    fn listener_ports(&self, proto: Proto, reverse: bool) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .listeners
            .iter()
            .filter(|(_, l)| matches!(l.role, Role::Reverse { .. }) == reverse)
            .filter(|(_, l)| {
                matches!(
                    (&l.sock, proto),
                    (Sock::Tcp(_), Proto::Tcp) | (Sock::Udp(_), Proto::Udp)
                )
            })
            .map(|(_, l)| l.local.port())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// `auto`: read the tables, forward what became bound, stop what is
    /// not bound any more. Ports rlnet listens on for the other direction
    /// are never taken (they would loop).
    pub(super) fn rescan(&mut self, ctx: &Ctx<'_>) {
        let Some(mut st) = self.pasta.take() else {
            return;
        };
        if st.take_due(ctx.now.total_micros()) {
            for proto in PROTOS {
                if st.opts.get(Way::In, proto).scans() {
                    let skip = self.listener_ports(proto, true);
                    let bound = st.bound(true, proto);
                    let want = wanted(
                        st.opts.get(Way::In, proto),
                        &bound,
                        st.opts.ephemeral,
                        &skip,
                    );
                    self.auto_in(&mut st, proto, want, ctx);
                }
                if st.opts.get(Way::Out, proto).scans() {
                    let skip = self.listener_ports(proto, false);
                    let bound = st.bound(false, proto);
                    let want = wanted(
                        st.opts.get(Way::Out, proto),
                        &bound,
                        st.opts.ephemeral,
                        &skip,
                    );
                    self.auto_out(&mut st, proto, want, ctx);
                }
            }
        }
        self.pasta = Some(st);
    }

    /// `-t/-u auto`: host listeners follow the namespace's bound ports.
    fn auto_in(
        &mut self,
        st: &mut PastaState,
        proto: Proto,
        want: std::collections::BTreeMap<u16, Want>,
        ctx: &Ctx<'_>,
    ) {
        let have = &mut st.auto_in[slot(proto)];
        let gone: Vec<(u16, u64)> = have
            .iter()
            .filter(|(p, _)| !want.contains_key(p))
            .map(|(p, id)| (*p, *id))
            .collect();
        for (port, id) in gone {
            let _ = self.unpublish(&[id], ctx);
            have.remove(&port);
        }
        let new: Vec<(u16, Want)> = want
            .into_iter()
            .filter(|(p, _)| !have.contains_key(p))
            .collect();
        for (port, w) in new {
            let spec = PublishSpec {
                host_ip: w.addr,
                host_ports: PortRange::single(port),
                ns_ports: PortRange::single(w.to),
                proto,
            };
            // A port already taken on the host is tried again next scan.
            match self.publish_on(&[spec], Mode::Stack, None, w.ifname.as_deref(), ctx) {
                Ok(ids) => {
                    have.insert(port, ids[0]);
                }
                Err(e) => crate::limited!(Debug, "auto: {spec}: {e}"),
            }
        }
    }

    /// `-T/-U auto`: namespace listeners follow the host's bound ports.
    fn auto_out(
        &mut self,
        st: &mut PastaState,
        proto: Proto,
        want: std::collections::BTreeMap<u16, Want>,
        ctx: &Ctx<'_>,
    ) {
        let have = &mut st.auto_out[slot(proto)];
        let gone: Vec<u16> = have
            .keys()
            .filter(|p| !want.contains_key(p))
            .copied()
            .collect();
        for port in gone {
            self.unpublish_reverse(proto, port, ctx);
            have.remove(&port);
        }
        let new: Vec<(u16, Want)> = want
            .into_iter()
            .filter(|(p, _)| !have.contains_key(p))
            .collect();
        for (port, w) in new {
            match self.publish_reverse(proto, port, w.to, ctx) {
                Ok(()) => {
                    have.insert(port, w);
                }
                Err(e) => crate::limited!(Debug, "auto: namespace port {port}/{proto}: {e}"),
            }
        }
    }
}
