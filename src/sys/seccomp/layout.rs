//! The filter's shape: one program, a binary search over the listed
//! system call numbers, each leading to its verdict or its rules.
//!
//! Why not seccompiler's own program: it compares the number against every
//! listed call in turn, and the kernel, when it loads a filter, runs it once
//! for every system call number to find those it may allow without running
//! it again (its per-filter cache). With ~90 calls listed that walk cost
//! ~0.3 ms per load, on the path to ready, in rlnet and in its socket factory
//! (a C loader of seccompiler's shape on the test VM: 14 µs for a filter
//! with one comparison, 284 µs with 90, 450 µs with 150). A binary search
//! makes it a few comparisons per number. seccompiler still compiles each
//! rule's argument checks; the arch check is its too.
//!
//! Pure logic: no system calls here.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch, sock_filter};

// Classic BPF opcodes (linux/bpf_common.h; `libc` has the parts as u32).
/// BPF_LD | BPF_W | BPF_ABS
const LD_W_ABS: u16 = 0x20;
/// BPF_JMP | BPF_JA
const JMP_JA: u16 = 0x05;
/// BPF_JMP | BPF_JEQ | BPF_K
const JMP_JEQ_K: u16 = 0x15;
/// BPF_JMP | BPF_JGE | BPF_K
const JMP_JGE_K: u16 = 0x35;
/// BPF_RET | BPF_K
const RET_K: u16 = 0x06;
// The others seccompiler's argument checks use (read by the tests'
// interpreter).
/// BPF_JMP | BPF_JGT | BPF_K
#[cfg(test)]
const JMP_JGT_K: u16 = 0x25;
/// BPF_JMP | BPF_JSET | BPF_K
#[cfg(test)]
const JMP_JSET_K: u16 = 0x45;
/// BPF_ALU | BPF_AND | BPF_K
#[cfg(test)]
const ALU_AND_K: u16 = 0x54;
/// The class bits of an opcode, and the jump class.
#[cfg(test)]
const CLASS: u16 = 0x07;
#[cfg(test)]
const JMP: u16 = 0x05;
/// `struct seccomp_data`'s `nr`.
const NR_OFFSET: u32 = 0;
/// Numbers compared one by one at the bottom of the search.
const LEAF: usize = 4;

/// What one listed system call gets.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Argument checks: any one matching gives `verdict`; none, a kill.
    /// Empty: `verdict` always.
    pub rules: Vec<SeccompRule>,
    pub verdict: SeccompAction,
}

impl Entry {
    pub fn allow(rules: Vec<SeccompRule>) -> Entry {
        Entry {
            rules,
            verdict: SeccompAction::Allow,
        }
    }
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn ret(action: SeccompAction) -> sock_filter {
    stmt(RET_K, action.into())
}

/// The whole program: the arch check (a kill for any other ABI), then the
/// search; a number not listed is a kill, and so is a listed call none of
/// whose rules match.
pub fn program(
    entries: BTreeMap<i64, Entry>,
    arch: TargetArch,
) -> Result<BpfProgram, seccompiler::BackendError> {
    // seccompiler's arch check: load arch, compare, kill; then (dropped
    // here) its default verdict.
    let mut prog: BpfProgram = SeccompFilter::new(
        BTreeMap::new(),
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )?
    .try_into()?;
    prog.pop();
    prog.push(stmt(LD_W_ABS, NR_OFFSET));
    let sorted: Vec<(u32, Entry)> = entries
        .into_iter()
        // Linux system call numbers are small and non-negative.
        .filter_map(|(nr, e)| Some((u32::try_from(nr).ok()?, e)))
        .collect();
    // Long jumps (JA takes 32 bits; conditional jumps only 8) to each ruled
    // call's block, patched once the blocks are placed after the search.
    let mut to_block: Vec<(usize, usize)> = Vec::new();
    search(&mut prog, &sorted, 0, sorted.len(), &mut to_block);
    let mut starts = Vec::with_capacity(sorted.len());
    for (_, e) in sorted {
        starts.push(prog.len());
        if e.rules.is_empty() {
            continue;
        }
        for rule in e.rules {
            // Each rule's checks jump past its verdict on a mismatch, to
            // the next rule or the kill after the last.
            prog.extend(BpfProgram::from(rule));
            prog.push(ret(e.verdict.clone()));
        }
        prog.push(ret(SeccompAction::KillProcess));
    }
    // The kernel checks every jump's target, reachable or not, and each
    // rule's exit jump (never taken: its entry jump skips it) points one
    // past the block's kill.
    prog.push(ret(SeccompAction::KillProcess));
    for (at, entry) in to_block {
        prog[at].k = u32::try_from(starts[entry] - at - 1).unwrap_or(u32::MAX);
    }
    Ok(prog)
}

/// Emit the search over `all[lo..hi]` (sorted by number). `to_block` gets
/// (instruction, index in `all`) for each jump to a ruled call's block.
fn search(
    prog: &mut BpfProgram,
    all: &[(u32, Entry)],
    lo: usize,
    hi: usize,
    to_block: &mut Vec<(usize, usize)>,
) {
    if hi - lo <= LEAF {
        for (i, (nr, e)) in all.iter().enumerate().take(hi).skip(lo) {
            // Equal: the next instruction; else skip it.
            prog.push(jump(JMP_JEQ_K, *nr, 0, 1));
            if e.rules.is_empty() {
                prog.push(ret(e.verdict.clone()));
            } else {
                to_block.push((prog.len(), i));
                prog.push(stmt(JMP_JA, 0));
            }
        }
        prog.push(ret(SeccompAction::KillProcess));
        return;
    }
    let mid = lo + (hi - lo) / 2;
    // nr >= pivot: take the long jump to the upper half; else skip it.
    prog.push(jump(JMP_JGE_K, all[mid].0, 0, 1));
    let upper = prog.len();
    prog.push(stmt(JMP_JA, 0));
    search(prog, all, lo, mid, to_block);
    prog[upper].k = u32::try_from(prog.len() - upper - 1).unwrap_or(u32::MAX);
    search(prog, all, mid, hi, to_block);
}

#[cfg(test)]
pub mod interp {
    //! A classic-BPF interpreter for the instructions seccomp filters here
    //! use, to check programs against each other. Panics on anything else.

    use seccompiler::sock_filter;

    use super::{
        ALU_AND_K, CLASS, JMP, JMP_JA, JMP_JEQ_K, JMP_JGE_K, JMP_JGT_K, JMP_JSET_K, LD_W_ABS, RET_K,
    };

    /// The comparisons, whose constants the tests draw arguments from.
    pub const COMPARE: [u16; 5] = [JMP_JEQ_K, JMP_JGT_K, JMP_JGE_K, JMP_JSET_K, ALU_AND_K];

    /// `struct seccomp_data`.
    pub struct Data {
        pub nr: u32,
        pub arch: u32,
        pub args: [u64; 6],
    }

    fn word(d: &Data, off: u32) -> u32 {
        match off {
            0 => d.nr,
            4 => d.arch,
            16..=63 if off.is_multiple_of(4) => {
                let arg = d.args[((off - 16) / 8) as usize];
                let [lo, hi] = [arg & 0xffff_ffff, arg >> 32].map(|h| u32::try_from(h).unwrap());
                // Little-endian: the low half first.
                if (off - 16).is_multiple_of(8) { lo } else { hi }
            }
            _ => panic!("load from offset {off}"),
        }
    }

    /// The filter's return value; panics on a jump out of the program.
    pub fn run(prog: &[sock_filter], d: &Data) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let i = &prog[pc];
            pc += 1;
            let taken = match i.code {
                LD_W_ABS => {
                    a = word(d, i.k);
                    continue;
                }
                ALU_AND_K => {
                    a &= i.k;
                    continue;
                }
                JMP_JA => {
                    pc += i.k as usize;
                    continue;
                }
                RET_K => return i.k,
                JMP_JEQ_K => a == i.k,
                JMP_JGT_K => a > i.k,
                JMP_JGE_K => a >= i.k,
                JMP_JSET_K => a & i.k != 0,
                c => panic!("opcode {c:#x} at {}", pc - 1),
            };
            pc += usize::from(if taken { i.jt } else { i.jf });
        }
    }

    /// What the kernel's `bpf_check_classic` asks of jumps and the end:
    /// every target inside the program, the last instruction a return.
    pub fn check_jumps(prog: &[sock_filter]) {
        let len = prog.len();
        for (pc, i) in prog.iter().enumerate() {
            if i.code == JMP_JA {
                assert!((i.k as usize) < len - pc - 1, "JA out of range at {pc}");
            } else if i.code & CLASS == JMP {
                let far = usize::from(i.jt.max(i.jf));
                assert!(pc + far + 1 < len, "jump out of range at {pc}");
            }
        }
        assert_eq!(
            prog.last().map(|i| i.code),
            Some(RET_K),
            "last is not a return"
        );
    }

    /// The kernel's choice among several filters' verdicts: the one whose
    /// action, as a signed number, is lowest (kill-process first).
    pub fn strictest(verdicts: &[u32]) -> u32 {
        let action = |v: u32| (v & 0xffff_0000).cast_signed();
        *verdicts
            .iter()
            .min_by_key(|&&v| action(v))
            .expect("a verdict")
    }
}

#[cfg(test)]
mod tests {
    use super::interp::{Data, run};
    use super::*;
    use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition};

    fn arch() -> TargetArch {
        TargetArch::try_from(std::env::consts::ARCH).expect("arch")
    }

    fn eq(arg: u8, v: u64) -> SeccompCondition {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, v).expect("cond")
    }

    #[test]
    fn every_listed_number_is_found_and_nothing_else() {
        // Sizes around the leaf and power-of-two edges.
        for n in [0i64, 1, 3, 4, 5, 8, 9, 31, 100, 400] {
            let entries: BTreeMap<i64, Entry> =
                (0..n).map(|i| (i * 3 + 1, Entry::allow(vec![]))).collect();
            let prog = program(entries.clone(), arch()).expect("program");
            interp::check_jumps(&prog);
            for nr in 0..u32::try_from(n * 3 + 8).unwrap() {
                let d = Data {
                    nr,
                    arch: audit_arch(&prog),
                    args: [0; 6],
                };
                let want = if entries.contains_key(&i64::from(nr)) {
                    libc::SECCOMP_RET_ALLOW
                } else {
                    libc::SECCOMP_RET_KILL_PROCESS
                };
                assert_eq!(run(&prog, &d), want, "n {n} nr {nr}");
            }
        }
    }

    /// The arch value the program's check compares with.
    fn audit_arch(prog: &[sock_filter]) -> u32 {
        prog[1].k
    }

    #[test]
    fn another_abi_or_x32_numbers_are_killed() {
        let entries: BTreeMap<i64, Entry> = (0..50).map(|i| (i, Entry::allow(vec![]))).collect();
        let prog = program(entries, arch()).expect("program");
        let native = audit_arch(&prog);
        let kill = libc::SECCOMP_RET_KILL_PROCESS;
        let other = Data {
            nr: 1,
            arch: native ^ 1,
            args: [0; 6],
        };
        assert_eq!(run(&prog, &other), kill);
        let x32 = Data {
            nr: 0x4000_0001,
            arch: native,
            args: [0; 6],
        };
        assert_eq!(run(&prog, &x32), kill);
    }

    #[test]
    fn rules_and_verdicts_reach_far_blocks() {
        // Many ruled calls: blocks sit well beyond an 8-bit jump.
        let mut entries = BTreeMap::new();
        for nr in 0..200i64 {
            let rules = (0..3)
                .map(|v| SeccompRule::new(vec![eq(0, v), eq(1, 7)]).expect("rule"))
                .collect();
            let verdict = if nr % 2 == 0 {
                SeccompAction::Allow
            } else {
                SeccompAction::Errno(1)
            };
            entries.insert(nr, Entry { rules, verdict });
        }
        let prog = program(entries, arch()).expect("program");
        interp::check_jumps(&prog);
        assert!(prog.len() > 1000);
        let native = audit_arch(&prog);
        for nr in 0..210u32 {
            for (a0, a1) in [(0, 7), (2, 7), (3, 7), (0, 6), (1u64 << 32, 7)] {
                let d = Data {
                    nr,
                    arch: native,
                    args: [a0, a1, 0, 0, 0, 0],
                };
                // Dword conditions compare the low 32 bits.
                let want = if nr >= 200 || a0 & 0xffff_ffff > 2 || a1 != 7 {
                    libc::SECCOMP_RET_KILL_PROCESS
                } else if nr % 2 == 0 {
                    libc::SECCOMP_RET_ALLOW
                } else {
                    libc::SECCOMP_RET_ERRNO | 1
                };
                assert_eq!(run(&prog, &d), want, "nr {nr} args {a0} {a1}");
            }
        }
    }
}
