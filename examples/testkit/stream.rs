//! The deterministic data streams and their checks: stream(SEED) is
//! splitmix64 output, little-endian; `digest` is FNV-1a-64 over its 64-bit
//! words; a [`Verifier`] regenerates the stream and compares every byte.

/// stream(seed): splitmix64 outputs, little-endian, at any byte granularity.
#[derive(Clone)]
pub struct Stream {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Stream {
    pub fn new(seed: u64) -> Stream {
        Stream {
            state: seed,
            word: [0; 8],
            used: 8,
        }
    }

    pub fn next_word(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let lead = (8 - self.used).min(buf.len());
        buf[..lead].copy_from_slice(&self.word[self.used..self.used + lead]);
        self.used += lead;
        let (words, tail) = buf[lead..].as_chunks_mut::<8>();
        for w in words {
            *w = self.next_word().to_le_bytes();
        }
        if !tail.is_empty() {
            self.word = self.next_word().to_le_bytes();
            tail.copy_from_slice(&self.word[..tail.len()]);
            self.used = tail.len();
        }
    }
}

/// FNV-1a-64 over 64-bit little-endian words (byte-wise FNV runs at well
/// under 1 GB/s; this keeps up with the data path). Tail zero-padded, then
/// the length is folded in.
#[derive(Clone)]
pub struct Digest {
    h: u64,
    pend: [u8; 8],
    npend: usize,
    len: u64,
}

const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

impl Digest {
    pub fn new() -> Digest {
        Digest {
            h: 0xCBF2_9CE4_8422_2325,
            pend: [0; 8],
            npend: 0,
            len: 0,
        }
    }

    fn fold(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(FNV_PRIME);
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.npend > 0 {
            let n = (8 - self.npend).min(data.len());
            self.pend[self.npend..self.npend + n].copy_from_slice(&data[..n]);
            self.npend += n;
            data = &data[n..];
            if self.npend < 8 {
                return;
            }
            self.fold(u64::from_le_bytes(self.pend));
            self.npend = 0;
        }
        let (words, rest) = data.as_chunks::<8>();
        for w in words {
            self.fold(u64::from_le_bytes(*w));
        }
        self.pend[..rest.len()].copy_from_slice(rest);
        self.npend = rest.len();
    }

    pub fn finish(&self) -> u64 {
        let mut d = self.clone();
        if d.npend > 0 {
            d.pend[d.npend..].fill(0);
            d.fold(u64::from_le_bytes(d.pend));
        }
        d.fold(d.len);
        d.h
    }
}

/// Checks received bytes against stream(seed), `want` bytes long.
pub struct Verifier {
    expect: Stream,
    scratch: Vec<u8>,
    want: u64,
    pub total: u64,
    first_bad: Option<u64>,
    pub digest: Digest,
}

impl Verifier {
    pub fn new(want: u64, seed: u64) -> Verifier {
        Verifier {
            expect: Stream::new(seed),
            scratch: Vec::new(),
            want,
            total: 0,
            first_bad: None,
            digest: Digest::new(),
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.digest.update(data);
        if self.first_bad.is_none() {
            let n = usize::try_from(self.want.saturating_sub(self.total))
                .map_or(data.len(), |l| l.min(data.len()));
            if self.scratch.len() < n {
                self.scratch.resize(n, 0);
            }
            self.expect.fill(&mut self.scratch[..n]);
            if data[..n] != self.scratch[..n] {
                let at = data
                    .iter()
                    .zip(&self.scratch[..n])
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                self.first_bad = Some(self.total + at as u64);
            } else if n < data.len() {
                self.first_bad = Some(self.total + n as u64);
            }
        }
        self.total += data.len() as u64;
    }

    /// The first offset that differs from the expectation (a short stream
    /// fails at its end), or None when it matched exactly.
    pub fn bad(&self) -> Option<u64> {
        self.first_bad
            .or((self.total < self.want).then_some(self.total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(seed: u64, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        Stream::new(seed).fill(&mut v);
        v
    }

    #[test]
    fn stream_is_chunking_independent() {
        let whole = stream(7, 10_000);
        for step in [1usize, 3, 7, 8, 9, 4095] {
            let mut st = Stream::new(7);
            let mut got = Vec::new();
            while got.len() < whole.len() {
                let mut c = vec![0; step.min(whole.len() - got.len())];
                st.fill(&mut c);
                got.extend_from_slice(&c);
            }
            assert_eq!(got, whole, "step {step}");
        }
        let mut w = Stream::new(7);
        assert_eq!(&whole[..8], &w.next_word().to_le_bytes());
        assert_ne!(stream(7, 64), stream(8, 64));
        assert_ne!(stream(0, 64), vec![0; 64]);
    }

    #[test]
    fn verifier() {
        let data = stream(3, 100_000);
        let feed = |d: &[u8], want: u64, step: usize| {
            let mut v = Verifier::new(want, 3);
            d.chunks(step).for_each(|c| v.feed(c));
            (v.bad(), v.total, v.digest.finish())
        };
        let (bad, total, dg) = feed(&data, 100_000, 4097);
        assert_eq!((bad, total), (None, 100_000));
        assert_eq!(feed(&data, 100_000, 1).2, dg);
        assert_eq!(feed(&data[..500], 100_000, 64).0, Some(500));
        assert_eq!(feed(&data, 99_999, 1000).0, Some(99_999));
        let mut bent = data.clone();
        bent[77_777] ^= 1;
        assert_eq!(feed(&bent, 100_000, 1000).0, Some(77_777));
        assert_eq!(feed(&stream(4, 1000), 1000, 1000).0, Some(0));
        assert_eq!(feed(&[], 0, 1).0, None);
    }

    #[test]
    fn digest_properties() {
        let data = stream(1, 1000);
        let mut a = Digest::new();
        a.update(&data);
        let mut b = Digest::new();
        for c in data.chunks(3) {
            b.update(c);
        }
        assert_eq!(a.finish(), b.finish());
        let (mut z1, mut z2) = (Digest::new(), Digest::new());
        z1.update(&[0; 5]);
        z2.update(&[0; 6]);
        assert_ne!(z1.finish(), z2.finish());
        assert_ne!(Digest::new().finish(), z1.finish());
    }
}
