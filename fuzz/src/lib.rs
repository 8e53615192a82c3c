//! What the fuzz targets share: the in-process engine harness for frames
//! ([`frame`]), the DNS oracle ([`dns`]) and the fixed configurations.
//! Seeds are written by `examples/seeds.rs` from the same encoders, so a
//! change of input format changes both.

pub mod dns;
pub mod frame;

/// Splits `data` into at most `max` words at NUL bytes (argv words cannot
/// contain NUL, so every byte string is some argv).
pub fn words(data: &[u8], max: usize) -> Vec<&[u8]> {
    data.split(|&b| b == 0).take(max).collect()
}
