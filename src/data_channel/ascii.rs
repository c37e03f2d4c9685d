//! TYPE A line endings (pure): LF to CRLF on the way out, CRLF to LF on the way in, across
//! chunk boundaries.

/// LF to CRLF for sending in TYPE A. A LF already preceded by CR (also across chunks, via
/// `prev_cr`) is left alone, so CRLF files never become CRCRLF. Returns the new `prev_cr`.
pub fn lf_to_crlf(input: &[u8], mut prev_cr: bool, out: &mut Vec<u8>) -> bool {
    out.reserve(input.len() + input.len() / 16);
    for &b in input {
        if b == b'\n' && !prev_cr {
            out.push(b'\r');
        }
        out.push(b);
        prev_cr = b == b'\r';
    }
    prev_cr
}

/// CRLF to LF for receiving in TYPE A. A CR at the end of a chunk is held (`pending_cr`) until
/// the next byte shows whether a LF follows; at EOF it is written as is. A lone CR is kept.
pub fn crlf_to_lf(input: &[u8], mut pending_cr: bool, eof: bool, out: &mut Vec<u8>) -> bool {
    out.reserve(input.len() + 1);
    for &b in input {
        if pending_cr {
            pending_cr = false;
            if b != b'\n' {
                out.push(b'\r');
            }
        }
        if b == b'\r' {
            pending_cr = true;
        } else {
            out.push(b);
        }
    }
    if eof && pending_cr {
        out.push(b'\r');
        pending_cr = false;
    }
    pending_cr
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_wire(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = false;
        for c in chunks {
            prev = lf_to_crlf(c, prev, &mut out);
        }
        out
    }

    fn from_wire(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut pending = false;
        for (i, c) in chunks.iter().enumerate() {
            pending = crlf_to_lf(c, pending, i + 1 == chunks.len(), &mut out);
        }
        out
    }

    #[test]
    fn ascii_send_adds_cr_once() {
        let cases: Vec<(Vec<&[u8]>, &[u8])> = vec![
            (vec![b"a\nb\n"], b"a\r\nb\r\n"),
            (vec![b"a\r\nb\r\n"], b"a\r\nb\r\n"),
            (vec![b"a\r", b"\nb"], b"a\r\nb"),
            (vec![b"a", b"\n", b"\n"], b"a\r\n\r\n"),
            (vec![b"\r\r\n"], b"\r\r\n"),
            (vec![b""], b""),
        ];
        for (chunks, want) in cases {
            assert_eq!(to_wire(&chunks), want, "{chunks:?}");
        }
    }

    #[test]
    fn ascii_receive_strips_cr_before_lf_even_across_reads() {
        let cases: Vec<(Vec<&[u8]>, &[u8])> = vec![
            (vec![b"a\r\nb\r\n"], b"a\nb\n"),
            (vec![b"a\r", b"\nb"], b"a\nb"),
            (vec![b"a\r", b"b"], b"a\rb"),
            (vec![b"a\r", b""], b"a\r"),
            (vec![b"a\n"], b"a\n"),
            (vec![b"\r\r\n"], b"\r\n"),
        ];
        for (chunks, want) in cases {
            assert_eq!(from_wire(&chunks), want, "{chunks:?}");
        }
    }
}
