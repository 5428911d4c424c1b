//! Recognising media bytes by their magic numbers, for the `image`, `audio` and `video` types.

/// What a byte string looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Audio,
    Video,
}

/// The kind and MIME type of `b`, when its first bytes are a known container's magic.
pub fn sniff(b: &[u8]) -> Option<(MediaKind, &'static str)> {
    use MediaKind::*;
    let at = |off: usize, magic: &[u8]| {
        b.len() >= off + magic.len() && &b[off..off + magic.len()] == magic
    };
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return Some((Image, "image/png"));
    }
    if at(0, b"\xff\xd8\xff") {
        return Some((Image, "image/jpeg"));
    }
    if at(0, b"GIF87a") || at(0, b"GIF89a") {
        return Some((Image, "image/gif"));
    }
    if at(0, b"RIFF") && at(8, b"WEBP") {
        return Some((Image, "image/webp"));
    }
    if at(0, b"BM") && b.len() > 14 {
        return Some((Image, "image/bmp"));
    }
    if at(0, b"II*\0") || at(0, b"MM\0*") {
        return Some((Image, "image/tiff"));
    }
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return Some((Audio, "audio/wav"));
    }
    if at(0, b"RIFF") && at(8, b"AVI ") {
        return Some((Video, "video/x-msvideo"));
    }
    if at(0, b"fLaC") {
        return Some((Audio, "audio/flac"));
    }
    if at(0, b"OggS") {
        return Some((Audio, "audio/ogg"));
    }
    if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        return Some((Audio, "audio/aiff"));
    }
    if at(0, b"ID3")
        || (b.len() >= 2 && b[0] == 0xff && (b[1] & 0xe0) == 0xe0 && (b[1] & 0x06) != 0)
    {
        return Some((Audio, "audio/mpeg"));
    }
    if at(4, b"ftyp") {
        return Some(if at(8, b"M4A ") || at(8, b"M4B ") {
            (Audio, "audio/mp4")
        } else {
            (Video, "video/mp4")
        });
    }
    if at(0, b"\x1a\x45\xdf\xa3") {
        return Some((Video, "video/webm"));
    }
    if at(0, b"\x00\x00\x01\xba") || at(0, b"\x00\x00\x01\xb3") {
        return Some((Video, "video/mpeg"));
    }
    if b.len() > 188 && b[0] == 0x47 && b[188] == 0x47 {
        return Some((Video, "video/mp2t"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_common_containers() {
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some((MediaKind::Image, "image/png"))
        );
        assert_eq!(
            sniff(b"RIFF\x24\0\0\0WAVEfmt "),
            Some((MediaKind::Audio, "audio/wav"))
        );
        assert_eq!(
            sniff(b"\0\0\0\x18ftypisom\0\0\x02\0"),
            Some((MediaKind::Video, "video/mp4"))
        );
        assert_eq!(
            sniff(b"\0\0\0\x18ftypM4A \0\0\x02\0"),
            Some((MediaKind::Audio, "audio/mp4"))
        );
        assert_eq!(sniff(b"hello"), None);
    }
}
