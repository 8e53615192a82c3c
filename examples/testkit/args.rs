//! Command lines: positionals, `--name VALUE` options and bare flags, and
//! the values they carry (addresses, byte counts, durations).

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use crate::fail::{Res, usage};

#[derive(Debug)]
pub struct Args {
    pub pos: Vec<String>,
    opts: Vec<(String, String)>,
    flags: Vec<String>,
    pub timeout: Duration,
    /// The command's synopsis, for usage errors.
    syntax: &'static str,
}

impl Args {
    /// Positionals plus `--name VALUE` / `--name=VALUE` for `valued`, bare
    /// `flags`, and `--timeout SECS` everywhere.
    pub fn parse(argv: &[String], valued: &[&str], flags: &[&str]) -> Res<Args> {
        let mut a = Args {
            pos: Vec::new(),
            opts: Vec::new(),
            flags: Vec::new(),
            timeout: Duration::from_secs(60),
            syntax: "",
        };
        let mut it = argv.iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                a.pos.extend(it.by_ref().cloned());
                break;
            }
            if !arg.starts_with("--") {
                a.pos.push(arg.clone());
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (arg.as_str(), None),
            };
            if name == "--timeout" || valued.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .ok_or_else(|| usage(format!("{name} needs a value")))?
                        .clone(),
                };
                if name == "--timeout" {
                    a.timeout = parse_secs(&v)?;
                } else {
                    a.opts.push((name.to_string(), v));
                }
            } else if flags.contains(&name) && inline.is_none() {
                a.flags.push(name.to_string());
            } else {
                return Err(usage(format!("unknown option {arg}")));
            }
        }
        Ok(a)
    }

    /// The synopsis named in usage errors.
    pub fn with_syntax(self, syntax: &'static str) -> Args {
        Args { syntax, ..self }
    }

    pub fn opt(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn num<T: FromStr>(&self, name: &str, default: T) -> Res<T> {
        Ok(self.opt_num(name)?.unwrap_or(default))
    }

    /// An optional number: None when the option is absent.
    pub fn opt_num<T: FromStr>(&self, name: &str) -> Res<Option<T>> {
        self.opt(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| usage(format!("{name}: bad number {v:?}")))
            })
            .transpose()
    }

    /// Positional `i` as an address (`IP:PORT`, `[IPv6]:PORT`).
    pub fn addr(&self, i: usize) -> Res<SocketAddr> {
        parse_addr(&self.pos[i])
    }

    /// Positional `i` as a count.
    pub fn pos_num<T: FromStr>(&self, i: usize) -> Res<T> {
        let s = &self.pos[i];
        s.parse().map_err(|_| usage(format!("bad count {s:?}")))
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    /// So many positionals, or a usage error naming the synopsis.
    pub fn want(&self, n: RangeInclusive<usize>) -> Res<()> {
        if n.contains(&self.pos.len()) {
            Ok(())
        } else {
            Err(usage(format!("usage: testkit {}", self.syntax)))
        }
    }
}

pub fn parse_secs(s: &str) -> Res<Duration> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1e7 => Ok(Duration::from_secs_f64(v)),
        _ => Err(usage(format!("bad --timeout {s:?}"))),
    }
}

pub fn parse_addr(s: &str) -> Res<SocketAddr> {
    s.parse()
        .map_err(|_| usage(format!("bad address {s:?} (want IP:PORT or [IPv6]:PORT)")))
}

/// A DNS server: `IP:PORT`, `[IPv6]:PORT` or a bare IP (port 53).
pub fn parse_server(s: &str) -> Res<SocketAddr> {
    parse_addr(s).or_else(|_| {
        s.parse::<IpAddr>()
            .map(|ip| SocketAddr::new(ip, 53))
            .map_err(|_| usage(format!("bad server {s:?}")))
    })
}

pub fn parse_ip(s: &str) -> Res<IpAddr> {
    s.parse()
        .map_err(|_| usage(format!("bad IP address {s:?}")))
}

/// A byte count with an optional binary k/m/g suffix.
pub fn parse_size(s: &str) -> Res<u64> {
    let (digits, mult) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| usage(format!("bad byte count {s:?}")))
}

/// `NAME` or `NAME:BYTES:SEED`.
pub fn parse_spec(s: &str) -> Res<(&str, Option<(u64, u64)>)> {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [name] => Ok((name, None)),
        [name, bytes, seed] => {
            let seed = seed
                .parse()
                .map_err(|_| usage(format!("bad seed in {s:?}")))?;
            Ok((name, Some((parse_size(bytes)?, seed))))
        }
        _ => Err(usage(format!(
            "bad mode {s:?}: want NAME or NAME:BYTES:SEED"
        ))),
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    v.try_into().ok()
}

/// Option `name` as a MAC address, `default` when absent.
pub fn mac_opt(a: &Args, name: &str, default: [u8; 6]) -> Res<[u8; 6]> {
    match a.opt(name) {
        None => Ok(default),
        Some(v) => parse_mac(v).ok_or_else(|| usage(format!("bad {name} {v:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args() {
        let v = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let a = Args::parse(
            &v("x --count 5 y --timeout=2.5 --stdin"),
            &["--count"],
            &["--stdin"],
        )
        .unwrap();
        assert_eq!(a.pos, ["x", "y"]);
        assert_eq!(a.num::<u64>("--count", 1).unwrap(), 5);
        assert_eq!(a.num::<u64>("--size", 9).unwrap(), 9);
        assert!(a.flag("--stdin"));
        assert_eq!(a.timeout, Duration::from_millis(2500));
        assert_eq!(
            Args::parse(&v("--count"), &["--count"], &[])
                .unwrap_err()
                .code(),
            2
        );
        assert!(Args::parse(&v("--bogus"), &[], &[]).is_err());
        assert!(Args::parse(&v("--timeout 0"), &[], &[]).is_err());
        assert!(
            Args::parse(&v("--count x"), &["--count"], &[])
                .unwrap()
                .num::<u64>("--count", 0)
                .is_err()
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("127.0.0.1:80").unwrap().port(), 80);
        assert!(parse_addr("[fd00::2]:9").unwrap().is_ipv6());
        assert!(parse_addr("fd00::2:9").is_err());
        assert!(parse_addr("localhost:9").is_err());
        assert_eq!(parse_server("10.0.2.3").unwrap().port(), 53);
        assert_eq!(parse_server("[fd00::3]:5353").unwrap().port(), 5353);
        assert_eq!(
            parse_mac("52:55:0a:00:02:02"),
            Some([0x52, 0x55, 10, 0, 2, 2])
        );
        assert_eq!(parse_mac("52:55:0a:00:02"), None);
    }
}
