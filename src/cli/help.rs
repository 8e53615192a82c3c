//! The help texts, written by hand: callers grep them for option names, and
//! a fixed text is easier to keep exact than clap's generated one. A unit
//! test checks each against its parser. (No `\` line continuations here:
//! they would eat the indentation.)

/// The options RootlessKit and Podman look for in `rlnet --help` before they
/// start rlnet (RootlessKit refuses to start without `--netns-type`; the
/// others switch features on). Advertising one commits rlnet to accept it.
pub const CALLER_OPTIONS: &[&str] = &[
    "--netns-type",
    "--mtu",
    "--cidr",
    "--disable-host-loopback",
    "--api-socket",
    "--enable-ipv6",
    "--enable-sandbox",
    "--enable-seccomp",
    "--outbound-addr",
    "--configure",
    "--ready-fd",
    "--exit-fd",
    "--userns-path",
    "--disable-dns",
    "--macaddress",
    "--publish",
];

/// `--version`: the last line is what slirp4netns's callers check.
pub(super) fn version_text() -> String {
    format!(
        "rlnet version {}\nslirp4netns-compatible: 1.2.0\nSLIRP_CONFIG_VERSION_MAX: 4\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Options shared by both forms.
const NET_OPTIONS_HELP: &str =
    "  -c, --configure            configure the interface (addresses, routes, MTU,
                             lo up) even if the caller created it
      --no-configure         never configure the interface
  -e, --exit-fd=FD           exit cleanly on any event on FD, such as the
                             other end of a pipe being closed
  -r, --ready-fd=FD          write \"1\" to FD and close it once ready
  -m, --mtu=MTU              MTU, up to 65521; at least 1280 with IPv6 and 68
                             without [65520]
  -6, --enable-ipv6          enable IPv6 (accepted: it is on by default)
      --disable-ipv6         IPv4 only
  -a, --api-socket=PATH      serve the slirp4netns JSON API on unix socket PATH
                             (also what 'rlnet port' talks to)
      --cidr=CIDR            IPv4 network, prefix length 1-25 [10.0.2.0/24]
      --disable-host-loopback
                             refuse connections to the gateway address, which
                             otherwise reach the host's 127.0.0.1 and ::1
      --no-host-loopback     deprecated spelling of --disable-host-loopback
      --disable-sandbox      do not confine rlnet once set up (by default it
                             keeps a private read-only root with only /etc,
                             /run and resolv.conf's directory, and no
                             capability but CAP_NET_BIND_SERVICE)
      --disable-seccomp      do not filter system calls once set up (by
                             default only those rlnet needs are allowed; any
                             other kills it)
      --enable-sandbox       accepted (slirp4netns's flag); the sandbox is on
                             by default
      --create-sandbox       deprecated spelling of --enable-sandbox
      --enable-seccomp       accepted (slirp4netns's flag); the filter is on
                             by default
      --outbound-addr=ADDR   send outbound IPv4 from ADDR (an IPv4 address or
                             an interface name)
      --outbound-addr6=ADDR  send outbound IPv6 from ADDR (an IPv6 address or
                             an interface name)
      --disable-dns          turn off the DNS stub (10.0.2.3, fd00::3)
      --dns-upstream=ADDR    the DNS stub forwards to ADDR (IP or IP:PORT,
                             IPv6 with a port as [::1]:5353) instead of the
                             servers in the host's resolv.conf; repeatable,
                             tried in order
      --resolv-conf=PATH     where the host's DNS servers are listed; changes
                             are followed [/etc/resolv.conf]
      --add-host=NAME:IP     the DNS stub answers NAME with IP; repeatable. IP
                             may be host-gateway: the gateway addresses
      --macaddress=MAC       MAC address of the interface, like
                             0e:d4:18:d9:38:fb; needs -c, except with
                             rlnet run (which configures by default)
  -p, --publish=SPEC         publish a host port in the namespace; repeatable.
                             SPEC is [HOST_IP:]HOST_PORT[-END]:NS_PORT[-END]
                             [/tcp|/udp], like 8080:80, 127.0.0.1:5353:53/udp
                             or [::1]:8443:443; without HOST_IP: all IPv4 and
                             IPv6 addresses
      --publish-mode=MODE    how published connections enter the namespace:
                             stack: through rlnet's stack, from the client's
                             real address (host loopback clients appear as
                             the gateway, 10.0.2.2 / fd00::2); splice: a
                             socket inside the namespace plus splice(2),
                             fastest, but the service sees the namespace's
                             own address as the client [stack]
";

/// Options about rlnet itself, last in both texts.
const GENERAL_OPTIONS_HELP: &str =
    "      --log-level=LEVEL      error, warn, info, debug or trace [warn]
  -h, --help                 print this help and exit
  -v, --version              print the version and exit
";

/// Options of the slirp4netns form only.
const COMPAT_OPTIONS_HELP: &str =
    "      --netns-type=TYPE      the first argument is a pid or a path [pid]
      --userns-path=PATH     user namespace to join before the network
                             namespace (with --netns-type=path; with a PID,
                             the user namespace of PID is used)
      --target-type=TYPE     accepted: netns is the only type [netns]
";

const DEFAULTS_HELP: &str = "Defaults (--cidr moves the IPv4 addresses; IPv6 is fixed):
  network                    10.0.2.0/24     fd00::/64
  gateway = host loopback    10.0.2.2        fd00::2
  DNS stub                   10.0.2.3        fd00::3
  namespace address          10.0.2.100      fd00::100
  DHCP from                  10.0.2.15
  MTU                        65520
  interface                  tap0
";

const USAGE_HELP: &str = "Usage: rlnet [OPTION]... PID|PATH [TAPNAME]
       rlnet run [OPTION]... -- COMMAND [ARG]...
       rlnet port add|rm|ls -a PATH [ARG]...
       rlnet check
Give an unprivileged network namespace a network: outbound NAT through a
userspace TCP/IP stack, published ports and a DNS stub. A drop-in for
slirp4netns.

PID is a process whose network namespace gets the network; rlnet exits when
it exits. With --netns-type=path, PATH is a network namespace file such as
/proc/PID/ns/net. TAPNAME is the interface inside it [tap0]. 'rlnet run'
starts COMMAND in a new user and network namespace (see 'rlnet run --help').
'rlnet port' publishes ports of a running rlnet (see 'rlnet port --help').
'rlnet check' tells whether this host lets rlnet work, and what to change.
'rlnet completion bash|zsh|fish' prints a shell completion script.
";

const RUN_USAGE_HELP: &str = "Usage: rlnet run [OPTION]... [--] COMMAND [ARG]...
       rlnet run --network NAME [--name N] [--alias A]... [-p SPEC]...
                 [--] COMMAND [ARG]...
Run COMMAND in a new user and network namespace with a network, and exit
with its status. Options end at '--' or at the first word that is not an
option; the rest is COMMAND and its arguments, passed on verbatim.

With --network NAME, the namespace joins the named network NAME (see
'rlnet network --help') instead of getting a network of its own; it leaves
the network when COMMAND exits. The network sets the addresses, MTU and
policies, so only -p/--publish (which needs --name), --disable-dns and
these apply:
      --network=NAME         the named network to join
      --name=N               the member's name, resolved by other members
      --alias=A              another name; repeatable
";

pub(super) fn help_text() -> String {
    format!(
        "{USAGE_HELP}\nOptions:\n{NET_OPTIONS_HELP}{COMPAT_OPTIONS_HELP}{GENERAL_OPTIONS_HELP}\n{DEFAULTS_HELP}\nErrors exit with status 1.\n"
    )
}

const PORT_HELP: &str = "Usage: rlnet port add -a PATH [--mode=MODE] [--json] SPEC...
       rlnet port rm -a PATH [--json] ID...
       rlnet port ls -a PATH [--json]
       rlnet port add --network NAME --to MEMBER [--mode=MODE] SPEC...
Publish, unpublish and list host ports of a running rlnet, through the API
socket it was started with (its -a PATH), or of a named network (--network
NAME, with --to naming the member the ports go to).

Commands:
  add SPEC...                publish each SPEC, all or nothing, and print the
                             new rule ids. SPEC is as for -p:
                             [HOST_IP:]HOST_PORT[-END]:NS_PORT[-END][/tcp|/udp]
                             like 8080:80, 127.0.0.1:5353:53/udp or
                             [::1]:8000-8010:8000-8010
  rm ID...                   unpublish the rules with these ids
  ls                         list the rules: ID, PROTO, HOST (*: all
                             addresses), NAMESPACE and MODE

Options:
  -a, --api-socket=PATH      the API socket of the running rlnet
      --network=NAME         instead of -a: the named network NAME
      --to=MEMBER            add: the member of the network (by name or
                             alias) the ports go to
      --mode=MODE            add: stack (the service sees the client's
                             address) or splice (fastest) [the instance's
                             default]
      --json                 print the API's answer as JSON
  -h, --help                 print this help and exit

Errors exit with status 1.
";

const COMPLETION_HELP: &str = "Usage: rlnet completion bash|zsh|fish
Print the shell completion script for rlnet's commands and options.
Packages install it; by hand, for example:
  rlnet completion bash > ~/.local/share/bash-completion/completions/rlnet
  rlnet completion zsh > \"${fpath[1]}/_rlnet\"
  rlnet completion fish > ~/.config/fish/completions/rlnet.fish

Errors exit with status 1.
";

pub(super) fn completion_help_text() -> String {
    COMPLETION_HELP.to_string()
}

pub(super) fn port_help_text() -> String {
    PORT_HELP.to_string()
}

pub(super) fn run_help_text() -> String {
    format!(
        "{RUN_USAGE_HELP}\nOptions:\n{NET_OPTIONS_HELP}{GENERAL_OPTIONS_HELP}\n{DEFAULTS_HELP}\nErrors exit with status 1; otherwise rlnet exits with COMMAND's status.\n"
    )
}

/// `rlnet check --help`.
pub(super) const CHECK_HELP: &str = "\
Usage: rlnet check

Check whether this host lets rlnet work, for the user running the check:
unprivileged user namespaces (kernel.unprivileged_userns_clone,
user.max_user_namespaces, and creating one with a network namespace and a TAP
in it), /dev/net/tun, AppArmor's restriction of user namespaces
(kernel.apparmor_restrict_unprivileged_userns) and a profile for rlnet, ping
sockets (net.ipv4.ping_group_range), privileged ports
(net.ipv4.ip_unprivileged_port_start) and the open-files limit. One line per
finding: ok, note, warn or FAIL, the finding, and its fix.

Options:
  -h, --help           show this help

Exits with status 1 when rlnet cannot work here (a FAIL line), else 0.
";

/// `pasta --version`: Podman shows it in `podman info` (first line).
pub(super) fn pasta_version_text() -> String {
    format!(
        "pasta (rlnet) {}\nrlnet as pasta: a pasta-compatible network helper\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `pasta --help` (docs/compat.md, "rlnet as pasta", says how each pasta
/// option is taken).
const PASTA_HELP: &str = "Usage: pasta [OPTION]... [COMMAND [ARG]...]
       pasta [OPTION]... PID
       pasta [OPTION]... --netns PATH|NAME
       rlnet pasta [OPTION]... (the same)
rlnet as pasta: without PID or --netns, run COMMAND (or $SHELL) in a new user
and network namespace; with them, give that namespace a network. The
namespace gets a copy of the host's default-route interface (name,
addresses, gateway), MTU 65520. rlnet configures, forks and the parent
exits once the namespace works (-f: no fork).

Options:
  -d, --debug                be verbose
      --trace                be extra verbose
  -q, --quiet                warnings and errors only
  -f, --foreground           do not fork into the background
  -e, --stderr               accepted, no effect (as in pasta)
  -l, --log-file=PATH        once running, log to PATH
  -P, --pid=FILE             write the PID of the running rlnet to FILE
  -h, --help                 print this help and exit
      --version              print the version and exit
  -I, --ns-ifname=NAME       interface in the namespace [the template's, else
                             tap0]
  -m, --mtu=MTU              68-65521, 0: leave the interface's [65520]
  -a, --address=ADDR[/LEN]   the namespace's IPv4 or IPv6 address [the
                             template's]
  -n, --netmask=MASK         IPv4 prefix length or dotted mask
  -g, --gateway=ADDR         IPv4 or IPv6 gateway [the template's]
  -M, --mac-addr=MAC         rlnet's MAC on the link [9a:55:9a:55:9a:55]
      --ns-mac-addr=MAC      the namespace interface's MAC
  -i, --interface=NAME       host interface to copy [the default route's]
  -o, --outbound=ADDR        source address of outbound IPv4 or IPv6 sockets
      --outbound-if4=NAME    IPv4 outbound from (and template) NAME
      --outbound-if6=NAME    IPv6 outbound from (and template) NAME
  -D, --dns=ADDR             accepted and checked; no effect (see
                             docs/compat.md)
  -S, --search=LIST          accepted and checked; no effect
  -4, --ipv4-only            IPv4 only
  -6, --ipv6-only            IPv6 only
      --config-net           set addresses, routes and MTU, bring the
                             interface up
      --no-dhcp              no DHCP server
      --no-dhcpv6            accepted; rlnet has no DHCPv6 server
      --no-ndp               no neighbour or router advertisements
      --no-ra                no router advertisements
  -t, --tcp-ports=SPEC       host TCP ports into the namespace; SPEC is none,
                             auto, all or [ADDR[%IF]/]PORTS: a list of
                             FIRST[-LAST][:TOFIRST[-TOLAST]], ~EXCLUDED,
                             all and auto [auto]
  -u, --udp-ports=SPEC       host UDP ports into the namespace [auto]
  -T, --tcp-ns=SPEC          the namespace's loopback TCP ports to the host's
                             loopback [auto]
  -U, --udp-ns=SPEC          the same for UDP [auto]
      --no-splice            loopback clients of -t/-u go through the stack
      --host-lo-to-ns-lo     spliced loopback clients reach the namespace's
                             loopback, not its address
      --map-gw               the gateway reaches the host's loopback (default)
      --no-map-gw            the gateway is only the gateway
      --map-host-loopback=ADDR
                             ADDR reaches the host's loopback; none: nothing
      --map-guest-addr=ADDR  ADDR reaches the host's own address
      --dns-forward=ADDR     DNS (port 53) to ADDR is answered by rlnet from
                             the host's resolvers
      --dns-host=ADDR        the resolver for --dns-forward [resolv.conf's]
      --userns=PATH          user namespace of --netns
      --netns=PATH|NAME      network namespace to serve (NAME: /run/netns)
      --netns-only           join only the network namespace
      --no-netns-quit        keep running when the --netns file is deleted

Other pasta options are refused. Errors exit with status 1.
";

pub(super) fn pasta_help_text() -> String {
    PASTA_HELP.to_string()
}

/// `rlnet network --help`.
pub(super) const NETWORK_HELP: &str = "\
Usage: rlnet network create [--subnet CIDR] [--internal] [--disable-ipv6] NAME
       rlnet network ls [--json]
       rlnet network inspect [--json] NAME
       rlnet network rm [--force] NAME...

Named networks: userspace bridges. Each network is a background rlnet (its
API socket is $XDG_RUNTIME_DIR/rlnet/NAME.sock); namespaces join it with
'rlnet attach' or 'rlnet run' (see their help). Members reach each other
directly and by name (the DNS stub answers member names and aliases to
members of the same network); networks are isolated from each other.

  create   start the network; it gets the first free 10.89.N.0/24 (and
           fd00:89:N::/64) unless --subnet CIDR (a /24 or larger, not
           overlapping another network). --internal: no outbound NAT and no
           upstream DNS. --disable-ipv6: IPv4 only.
  ls       the networks: name, subnet, members, flags
  inspect  one network: addresses, members (name, aliases, addresses, TAP,
           PID) and published ports
  rm       stop networks; refused while a network has members, unless
           forced (which detaches them: their TAPs go away)

Options:
      --subnet=CIDR    create: the IPv4 subnet (a /24 or larger)
      --internal       create: no outbound NAT, no upstream DNS
      --disable-ipv6   create: IPv4 only
  -f, --force          rm: detach the members first
      --json           ls, inspect: print JSON
  -h, --help           show this help
";

/// `rlnet attach --help`.
pub(super) const ATTACH_HELP: &str = "\
Usage: rlnet attach --network NAME [--name N] [--alias A]... [-p SPEC]...
                    PID|PATH

Put a running namespace on network NAME: it gets its own TAP (tap0, tap1 ...
if it is on several networks), an address from the network's subnet, routes
and the network's DNS stub. PID: the namespaces of that process (the member
leaves when it exits); PATH: a network namespace file (with --userns-path for
its user namespace; the member stays until 'rlnet detach').

Options:
      --network NAME     the network (see 'rlnet network ls')
      --name N           the member's name: other members resolve it
      --alias A          another name; repeatable
  -p, --publish SPEC     publish a port of this member on the host
                         ([HOST_IP:]HOST_PORT[-END]:PORT[-END][/tcp|/udp]);
                         needs --name
      --userns-path PATH the user namespace of a PATH target
      --json             print the member as JSON
  -h, --help             show this help
";

/// `rlnet detach --help`.
pub(super) const DETACH_HELP: &str = "\
Usage: rlnet detach --network NAME NAME|PID

Take a member off network NAME (by its name or its PID): its TAP goes away,
its published ports are removed and its address is free again.

Options:
      --network NAME   the network
  -h, --help           show this help
";

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::super::check::CheckCli;
    use super::super::compat::CompatCli;
    use super::super::network::{MemberCli, NetworkCli};
    use super::super::port::PortCli;
    use super::super::run::RunCli;
    use super::super::testing::{fails, printed};
    use super::*;

    #[test]
    fn help_and_version() {
        for args in [
            &["--help"][..],
            &["-h"],
            &["--he"],
            &["1234", "-h"],
            &["-c", "--help"],
        ] {
            let help = printed(args);
            assert!(help.starts_with("Usage: rlnet [OPTION]... PID|PATH [TAPNAME]\n"));
        }
        let help = printed(&["--help"]);
        assert!(help.contains("rlnet run [OPTION]... -- COMMAND [ARG]..."));
        for s in CALLER_OPTIONS.iter().chain(&[
            "10.0.2.0/24",
            "10.0.2.2",
            "10.0.2.3",
            "10.0.2.100",
            "fd00::/64",
            "65520",
        ]) {
            assert!(help.contains(s), "help lacks {s}");
        }
        let run_help = printed(&["run", "--help"]);
        assert!(run_help.starts_with("Usage: rlnet run [OPTION]... [--] COMMAND [ARG]...\n"));
        assert_eq!(printed(&["run", "-h", "ls"]), run_help);
        for args in [&["-v"][..], &["--version"], &["--vers"], &["run", "-v"]] {
            let v = printed(args);
            let lines: Vec<&str> = v.lines().collect();
            assert_eq!(
                lines,
                [
                    format!("rlnet version {}", env!("CARGO_PKG_VERSION")).as_str(),
                    "slirp4netns-compatible: 1.2.0",
                    "SLIRP_CONFIG_VERSION_MAX: 4"
                ]
            );
        }
        // clap's -V is not ours.
        fails(&["-V"], "'-V'");
    }

    /// The hand-written help must document every option clap accepts, and
    /// mention nothing clap does not accept.
    #[test]
    fn help_matches_the_parser() {
        for (cmd, help) in [
            (CompatCli::command(), help_text()),
            (RunCli::command(), run_help_text()),
            (PortCli::command(), port_help_text()),
            (NetworkCli::command(), NETWORK_HELP.to_string()),
            (MemberCli::command(), ATTACH_HELP.to_string()),
            (CheckCli::command(), CHECK_HELP.to_string()),
        ] {
            let mut longs = Vec::new();
            for arg in cmd.get_arguments() {
                if let Some(long) = arg.get_long() {
                    let long = format!("--{long}");
                    assert!(help.contains(&long), "{} help lacks {long}", cmd.get_name());
                    longs.push(long);
                }
                if let Some(short) = arg.get_short() {
                    let pair = format!("-{short}, --{}", arg.get_long().unwrap_or_default());
                    assert!(help.contains(&pair), "{} help lacks {pair}", cmd.get_name());
                }
            }
            for word in help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
                if let Some(name) = word.strip_prefix("--").filter(|n| !n.is_empty()) {
                    let name = format!("--{name}");
                    assert!(
                        longs.contains(&name),
                        "{} help mentions unknown {name}",
                        cmd.get_name()
                    );
                }
            }
            for line in help.lines() {
                assert!(line.len() <= 80, "help line too long: {line:?}");
                if line.trim_start().starts_with('-') {
                    assert!(
                        line.starts_with("  -") && line.as_bytes()[3] != b'-'
                            || line.starts_with("      --"),
                        "misaligned help line: {line:?}"
                    );
                }
            }
        }
        assert!(!run_help_text().contains("--netns-type"));
    }
}
