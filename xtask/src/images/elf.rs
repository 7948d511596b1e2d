//! Just enough ELF reading to tell a static executable from a dynamic one.
//!
//! The single-binary images have no dynamic loader or libc inside, so a dynamically linked binary
//! would fail at container start with a confusing "no such file or directory". Checking up front turns
//! that into a clear message (e.g. Debian's `busybox` package instead of `busybox-static`).

use anyhow::bail;

/// Program header type of the "interpreter" (dynamic loader) request.
const PT_INTERP: u32 = 3;

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Whether a 64-bit little-endian ELF executable asks for a dynamic loader (has a `PT_INTERP`
/// program header). Anything else (a script, a 32-bit or big-endian binary, a truncated file) is an
/// error, as none of it can be checked here.
pub fn is_dynamic(bytes: &[u8]) -> anyhow::Result<bool> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        bail!("not an ELF executable");
    }
    // EI_CLASS 2 = 64-bit, EI_DATA 1 = little-endian.
    if bytes.get(4..6) != Some(&[2, 1]) {
        bail!("not a 64-bit little-endian ELF executable");
    }
    let headers = (|| {
        let offset = usize::try_from(u64_at(bytes, 0x20)?).ok()?;
        let entry_size = usize::from(u16_at(bytes, 0x36)?);
        let count = usize::from(u16_at(bytes, 0x38)?);
        (0..count)
            .map(|i| u32_at(bytes, offset.checked_add(i.checked_mul(entry_size)?)?))
            .collect::<Option<Vec<u32>>>()
    })();
    match headers {
        Some(types) => Ok(types.contains(&PT_INTERP)),
        None => bail!("truncated ELF program headers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header followed by program headers of the given types.
    fn elf(program_header_types: &[u32]) -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        bytes[..6].copy_from_slice(b"\x7fELF\x02\x01");
        bytes[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        bytes[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        let count = u16::try_from(program_header_types.len()).unwrap();
        bytes[0x38..0x3a].copy_from_slice(&count.to_le_bytes());
        for kind in program_header_types {
            let mut header = vec![0u8; 56];
            header[..4].copy_from_slice(&kind.to_le_bytes());
            bytes.extend(header);
        }
        bytes
    }

    #[test]
    fn interp_header_means_dynamic() {
        assert!(is_dynamic(&elf(&[6, PT_INTERP, 1])).unwrap());
        assert!(!is_dynamic(&elf(&[1, 1, 4])).unwrap());
    }

    #[test]
    fn non_elf_and_truncated_files_are_errors() {
        assert!(is_dynamic(b"#!/bin/sh\n").is_err());
        let mut truncated = elf(&[1, 1]);
        truncated.truncate(80);
        assert!(is_dynamic(&truncated).is_err());
    }

    #[test]
    fn this_test_binary_can_be_read() {
        // Rust test binaries are dynamically linked on glibc hosts; either way the parse must succeed.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        is_dynamic(&me).unwrap();
    }
}
