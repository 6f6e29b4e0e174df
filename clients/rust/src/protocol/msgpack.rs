//! The little MessagePack the wire protocol uses, read and written by hand.
//!
//! Frames use a small subset (nil, bool, unsigned integers, strings, binary,
//! arrays, maps). Reading it here, rather than through a generic
//! deserializer, keeps every length checked against the bytes that are
//! actually there (a hostile length never allocates), gives errors that say
//! which field was wrong, and costs no intermediate values on the hot path.

use std::fmt;

/// Why a frame body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// What was being read.
    pub field: &'static str,
    /// What was wrong with it.
    pub problem: &'static str,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

impl std::error::Error for ReadError {}

fn err(field: &'static str, problem: &'static str) -> ReadError {
    ReadError { field, problem }
}

/// A cursor over one frame body.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// True when every byte was read.
    pub fn is_done(&self) -> bool {
        self.pos == self.buf.len()
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ReadError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| err(field, "truncated"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self, field: &'static str) -> Result<u8, ReadError> {
        Ok(self.take(1, field)?[0])
    }

    fn be(&mut self, n: usize, field: &'static str) -> Result<u64, ReadError> {
        Ok(self
            .take(n, field)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// True (and consumed) when the next value is nil.
    pub fn nil(&mut self) -> bool {
        if self.buf.get(self.pos) == Some(&0xc0) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// An unsigned integer in any width.
    pub fn uint(&mut self, field: &'static str) -> Result<u64, ReadError> {
        match self.byte(field)? {
            b @ 0x00..=0x7f => Ok(u64::from(b)),
            0xcc => self.be(1, field),
            0xcd => self.be(2, field),
            0xce => self.be(4, field),
            0xcf => self.be(8, field),
            _ => Err(err(field, "expected an unsigned integer")),
        }
    }

    /// An unsigned integer that must fit `max`.
    pub fn uint_max(&mut self, field: &'static str, max: u64) -> Result<u64, ReadError> {
        let v = self.uint(field)?;
        if v > max {
            return Err(err(field, "out of range"));
        }
        Ok(v)
    }

    /// nil or an unsigned integer.
    pub fn opt_uint(&mut self, field: &'static str) -> Result<Option<u64>, ReadError> {
        if self.nil() {
            Ok(None)
        } else {
            self.uint(field).map(Some)
        }
    }

    /// A boolean.
    /// The marker byte of the next value, without reading it.
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Reads a boolean.
    pub fn bool(&mut self, field: &'static str) -> Result<bool, ReadError> {
        match self.byte(field)? {
            0xc2 => Ok(false),
            0xc3 => Ok(true),
            _ => Err(err(field, "expected a boolean")),
        }
    }

    fn str_len(&mut self, field: &'static str) -> Result<usize, ReadError> {
        Ok(match self.byte(field)? {
            b @ 0xa0..=0xbf => usize::from(b & 0x1f),
            0xd9 => self.be(1, field)? as usize,
            0xda => self.be(2, field)? as usize,
            0xdb => self.be(4, field)? as usize,
            _ => return Err(err(field, "expected a string")),
        })
    }

    /// A UTF-8 string.
    pub fn str(&mut self, field: &'static str) -> Result<&'a str, ReadError> {
        let len = self.str_len(field)?;
        std::str::from_utf8(self.take(len, field)?).map_err(|_| err(field, "not UTF-8"))
    }

    /// nil or a string.
    pub fn opt_str(&mut self, field: &'static str) -> Result<Option<&'a str>, ReadError> {
        if self.nil() {
            Ok(None)
        } else {
            self.str(field).map(Some)
        }
    }

    /// Binary bytes (a string is accepted too, for clients whose library
    /// cannot tell the two apart).
    pub fn bin(&mut self, field: &'static str) -> Result<&'a [u8], ReadError> {
        let len = match self.buf.get(self.pos) {
            Some(0xc4) => {
                self.pos += 1;
                self.be(1, field)? as usize
            }
            Some(0xc5) => {
                self.pos += 1;
                self.be(2, field)? as usize
            }
            Some(0xc6) => {
                self.pos += 1;
                self.be(4, field)? as usize
            }
            Some(_) => self
                .str_len(field)
                .map_err(|_| err(field, "expected binary"))?,
            None => return Err(err(field, "truncated")),
        };
        self.take(len, field)
    }

    /// An array header: how many elements follow.
    pub fn array(&mut self, field: &'static str) -> Result<usize, ReadError> {
        Ok(match self.byte(field)? {
            b @ 0x90..=0x9f => usize::from(b & 0x0f),
            0xdc => self.be(2, field)? as usize,
            0xdd => self.be(4, field)? as usize,
            _ => return Err(err(field, "expected an array")),
        })
    }

    /// A map header: how many key/value pairs follow.
    pub fn map(&mut self, field: &'static str) -> Result<usize, ReadError> {
        Ok(match self.byte(field)? {
            b @ 0x80..=0x8f => usize::from(b & 0x0f),
            0xde => self.be(2, field)? as usize,
            0xdf => self.be(4, field)? as usize,
            _ => return Err(err(field, "expected a map")),
        })
    }

    /// Skips one value of any type (a field a later revision appended),
    /// nested arrays and maps included; nesting deeper than 32 is refused
    /// rather than followed.
    pub fn skip(&mut self, field: &'static str) -> Result<(), ReadError> {
        self.skip_nested(field, 0)
    }

    fn skip_nested(&mut self, field: &'static str, depth: u32) -> Result<(), ReadError> {
        if depth > 32 {
            return Err(err(field, "nested too deeply"));
        }
        let marker = self.byte(field)?;
        let (bytes, items) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * usize::from(marker & 0x0f)),
            0x90..=0x9f => (0, usize::from(marker & 0x0f)),
            0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (self.be(1, field)? as usize, 0),
            0xc5 | 0xda => (self.be(2, field)? as usize, 0),
            0xc6 | 0xdb => (self.be(4, field)? as usize, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xc7 => (self.be(1, field)? as usize + 1, 0),
            0xc8 => (self.be(2, field)? as usize + 1, 0),
            0xc9 => (self.be(4, field)? as usize + 1, 0),
            0xdc => (0, self.be(2, field)? as usize),
            0xdd => (0, self.be(4, field)? as usize),
            0xde => (0, 2 * self.be(2, field)? as usize),
            0xdf => (0, 2 * self.be(4, field)? as usize),
            0xc1 => return Err(err(field, "not a MessagePack value")),
        };
        self.take(bytes, field)?;
        let items = self.bounded(items, field)?;
        for _ in 0..items {
            self.skip_nested(field, depth + 1)?;
        }
        Ok(())
    }

    /// A count read from the wire, checked against the bytes left (each
    /// element takes at least one byte), so a forged count never drives a
    /// large allocation.
    pub fn bounded(&self, count: usize, field: &'static str) -> Result<usize, ReadError> {
        if count > self.buf.len() - self.pos {
            return Err(err(field, "count larger than the frame"));
        }
        Ok(count)
    }
}

/// Appends MessagePack values to a buffer.
pub struct Writer<'a>(pub &'a mut Vec<u8>);

// Writing into a Vec cannot fail, so the rmp results are dropped.
impl Writer<'_> {
    /// nil.
    pub fn nil(&mut self) {
        let _ = rmp::encode::write_nil(self.0);
    }

    /// An unsigned integer in its shortest form.
    pub fn uint(&mut self, v: u64) {
        let _ = rmp::encode::write_uint(self.0, v);
    }

    /// nil or an unsigned integer.
    pub fn opt_uint(&mut self, v: Option<u64>) {
        match v {
            Some(v) => self.uint(v),
            None => self.nil(),
        }
    }

    /// A boolean.
    pub fn bool(&mut self, v: bool) {
        let _ = rmp::encode::write_bool(self.0, v);
    }

    /// A string.
    pub fn str(&mut self, v: &str) {
        let _ = rmp::encode::write_str(self.0, v);
    }

    /// nil or a string.
    pub fn opt_str(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.str(v),
            None => self.nil(),
        }
    }

    /// Binary bytes.
    pub fn bin(&mut self, v: &[u8]) {
        let _ = rmp::encode::write_bin(self.0, v);
    }

    /// An array header.
    pub fn array(&mut self, len: usize) {
        let _ = rmp::encode::write_array_len(self.0, len as u32);
    }

    /// A map header.
    pub fn map(&mut self, len: usize) {
        let _ = rmp::encode::write_map_len(self.0, len as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width_reads_back() {
        for v in [
            0,
            1,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            Writer(&mut buf).uint(v);
            assert_eq!(Reader::new(&buf).uint("v").unwrap(), v);
        }
        for len in [0, 31, 32, 255, 256, 70_000] {
            let s = "x".repeat(len);
            let mut buf = Vec::new();
            Writer(&mut buf).str(&s);
            assert_eq!(Reader::new(&buf).str("s").unwrap(), s);
            let mut buf = Vec::new();
            Writer(&mut buf).bin(s.as_bytes());
            assert_eq!(Reader::new(&buf).bin("b").unwrap(), s.as_bytes());
        }
    }

    #[test]
    fn skip_passes_over_any_value_and_stops_at_the_next() {
        let mut buf = Vec::new();
        let mut w = Writer(&mut buf);
        w.array(3);
        w.map(1);
        w.str("k");
        w.bin(&[1, 2, 3]);
        w.uint(u64::MAX);
        w.opt_str(None);
        w.str("next");
        let mut r = Reader::new(&buf);
        r.skip("x").unwrap();
        assert_eq!(r.str("next"), Ok("next"));
        assert!(r.is_done());
        // A forged count is refused, not followed.
        assert!(Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff])
            .skip("x")
            .is_err());
        let deep = [0x91u8; 40];
        assert!(Reader::new(&deep).skip("x").is_err());
    }

    #[test]
    fn forged_lengths_are_errors_not_allocations() {
        // A string claiming 4 GiB with 3 bytes behind it.
        let buf = [0xdb, 0xff, 0xff, 0xff, 0xff, b'a', b'b', b'c'];
        assert_eq!(
            Reader::new(&buf).str("name").unwrap_err(),
            ReadError {
                field: "name",
                problem: "truncated"
            }
        );
        let buf = [0xdd, 0xff, 0xff, 0xff, 0xff];
        let mut r = Reader::new(&buf);
        let n = r.array("rows").unwrap();
        assert!(r.bounded(n, "rows").is_err());
    }
}
