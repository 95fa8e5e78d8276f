//! The format of a stream, recognised from its first bytes, not its name.

/// The kinds of content recognised by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// gzip-compressed; may hold a tar archive.
    Gzip,
    /// A zip archive.
    Zip,
    /// An uncompressed tar archive.
    Tar,
    /// A Windows `.evtx` file.
    Evtx,
    /// Anything else: JSON lines.
    Lines,
}

/// Recognises a format from the first bytes of a stream (at least 262 for tar).
pub fn sniff(head: &[u8]) -> Format {
    if head.starts_with(&[0x1f, 0x8b]) {
        Format::Gzip
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Format::Zip
    } else if head.starts_with(b"ElfFile\0") {
        Format::Evtx
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Format::Tar
    } else {
        Format::Lines
    }
}
