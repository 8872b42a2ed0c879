//! The primitive types of Kafka's generated message schemas, as the coordinators' internal-topic
//! records (`__consumer_offsets`, `__transaction_state`) use them: big-endian integers, unsigned
//! varints, `STRING` / `COMPACT_STRING`, `BYTES` / `COMPACT_BYTES`, array counts and
//! tagged-field sections.
//!
//! [`Reader`] reads untrusted bytes totally: every read is bounds-checked, every length is
//! checked against the bytes left before anything is allocated, and nothing panics. Strings are
//! decoded as Java's `new String(bytes, UTF_8)` does, replacing invalid UTF-8 rather than
//! failing. Each read names its field, and every [`WireError`] carries that name.
//!
//! [`Writer`] appends fields. A string, byte array or array too long for its length prefix is cut
//! (a string at a character boundary) so the output stays well-formed; the first such field is
//! remembered, and [`Writer::finish`] reports it where [`Writer::finish_lossy`] does not.
//!
//! `flexible` selects the encoding of a flexible message version (KIP-482): compact lengths
//! (unsigned varint of length + 1, 0 for null) instead of `i16` / `i32` ones (-1 for null).

use std::fmt;

/// Longest string Kafka's generated serializers accept, flexible or not (`0x7fff` bytes).
pub const MAX_STRING_LEN: usize = i16::MAX as usize;

/// Why a record could not be decoded (or, by [`Writer::finish`], encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The input ended inside a field.
    Truncated {
        field: &'static str,
        needed: usize,
        remaining: usize,
    },
    /// The value's version is outside the versions its schema defines.
    UnsupportedValueVersion {
        record: &'static str,
        version: i16,
        max: i16,
    },
    /// A field the schema declares non-nullable was written as null.
    NullField { field: &'static str },
    /// A length prefix no valid encoder writes (e.g. a compact string over 0x7fff bytes).
    InvalidLength { field: &'static str, length: i64 },
    /// An array claims more elements than there are bytes left to hold them.
    ArrayTooLong {
        field: &'static str,
        count: usize,
        remaining: usize,
    },
    /// An unsigned varint longer than 5 bytes or wider than 32 bits.
    InvalidVarint { field: &'static str },
    /// Encoding only: a field is longer than its length prefix can say.
    FieldTooLong {
        field: &'static str,
        length: usize,
        max: usize,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated {
                field,
                needed,
                remaining,
            } => write!(
                f,
                "truncated {field}: needs {needed} bytes, only {remaining} left"
            ),
            WireError::UnsupportedValueVersion {
                record,
                version,
                max,
            } => write!(
                f,
                "{record} version {version} is not supported (this broker reads 0..={max})"
            ),
            WireError::NullField { field } => {
                write!(f, "non-nullable field {field} was serialized as null")
            }
            WireError::InvalidLength { field, length } => {
                write!(f, "field {field} has invalid length {length}")
            }
            WireError::ArrayTooLong {
                field,
                count,
                remaining,
            } => write!(
                f,
                "array {field} claims {count} elements but only {remaining} bytes are left"
            ),
            WireError::InvalidVarint { field } => {
                write!(f, "malformed unsigned varint in {field}")
            }
            WireError::FieldTooLong { field, length, max } => write!(
                f,
                "field {field} is {length} bytes, more than the {max} its schema can hold"
            ),
        }
    }
}

impl std::error::Error for WireError {}

/// Most elements (or bytes) an array or byte-array length prefix can say: an `i32` count, or a
/// compact `count + 1` that must still be a non-negative Java `int`.
fn max_count(flexible: bool) -> usize {
    if flexible {
        i32::MAX as usize - 1
    } else {
        i32::MAX as usize
    }
}

/// A cursor over untrusted bytes; every read is bounds-checked.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated {
                field,
                needed: n,
                remaining: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// The next `N` bytes, by value.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub fn i8(&mut self, field: &'static str) -> Result<i8, WireError> {
        Ok(i8::from_be_bytes(self.array(field)?))
    }

    pub fn i16(&mut self, field: &'static str) -> Result<i16, WireError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    pub fn i32(&mut self, field: &'static str) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    pub fn i64(&mut self, field: &'static str) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    /// Kafka's `UNSIGNED_VARINT`: at most 5 bytes, at most 32 bits.
    pub fn uvarint(&mut self, field: &'static str) -> Result<u32, WireError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [b] = self.array::<1>(field)?;
            let bits = u32::from(b & 0x7f);
            if i == 4 && ((b & 0x80) != 0 || bits > 0x0f) {
                return Err(WireError::InvalidVarint { field });
            }
            value |= bits << (7 * i);
            if (b & 0x80) == 0 {
                return Ok(value);
            }
        }
        Err(WireError::InvalidVarint { field })
    }

    /// A length or count prefix, `None` for null. Non-flexible: `i16` or `i32` (`wide`), any
    /// negative is null (as in Kafka's generated readers). Flexible: unsigned varint length + 1,
    /// 0 is null.
    fn len_prefix(
        &mut self,
        field: &'static str,
        flexible: bool,
        wide: bool,
    ) -> Result<Option<usize>, WireError> {
        if flexible {
            Ok(self.uvarint(field)?.checked_sub(1).map(|n| n as usize))
        } else if wide {
            Ok(usize::try_from(self.i32(field)?).ok())
        } else {
            Ok(usize::try_from(self.i16(field)?).ok())
        }
    }

    /// `NULLABLE_STRING` / `COMPACT_NULLABLE_STRING`. A compact length over [`MAX_STRING_LEN`]
    /// is refused, as Kafka does.
    pub fn nullable_string(
        &mut self,
        field: &'static str,
        flexible: bool,
    ) -> Result<Option<String>, WireError> {
        let Some(len) = self.len_prefix(field, flexible, false)? else {
            return Ok(None);
        };
        if len > MAX_STRING_LEN {
            // Only reachable through a compact length; an `i16` one cannot exceed it.
            return Err(WireError::InvalidLength {
                field,
                length: len as i64,
            });
        }
        let raw = self.take(len, field)?;
        Ok(Some(String::from_utf8_lossy(raw).into_owned()))
    }

    /// `STRING` / `COMPACT_STRING`: as [`Reader::nullable_string`], null refused.
    pub fn string(&mut self, field: &'static str, flexible: bool) -> Result<String, WireError> {
        self.nullable_string(field, flexible)?
            .ok_or(WireError::NullField { field })
    }

    /// Non-nullable `BYTES` / `COMPACT_BYTES`, borrowed from the input.
    pub fn bytes(&mut self, field: &'static str, flexible: bool) -> Result<&'a [u8], WireError> {
        let len = self
            .len_prefix(field, flexible, true)?
            .ok_or(WireError::NullField { field })?;
        self.take(len, field)
    }

    /// A nullable array's count, `None` for null; refused when larger than the bytes left
    /// (Kafka's generated readers do the same check before allocating), so a caller may size a
    /// vector by it.
    pub fn nullable_array_len(
        &mut self,
        field: &'static str,
        flexible: bool,
    ) -> Result<Option<usize>, WireError> {
        let count = self.len_prefix(field, flexible, true)?;
        if let Some(count) = count {
            if count > self.remaining() {
                return Err(WireError::ArrayTooLong {
                    field,
                    count,
                    remaining: self.remaining(),
                });
            }
        }
        Ok(count)
    }

    /// A non-nullable array's count: as [`Reader::nullable_array_len`], null refused.
    pub fn array_len(&mut self, field: &'static str, flexible: bool) -> Result<usize, WireError> {
        self.nullable_array_len(field, flexible)?
            .ok_or(WireError::NullField { field })
    }

    /// A flexible version's tagged-field section, every tag skipped: count, then
    /// `(tag, size, bytes)` each.
    pub fn skip_tagged_fields(&mut self, field: &'static str) -> Result<(), WireError> {
        let count = self.uvarint(field)?;
        for _ in 0..count {
            let _tag = self.uvarint(field)?;
            let size = self.uvarint(field)? as usize;
            self.take(size, field)?;
        }
        Ok(())
    }
}

/// Appends big-endian fields; remembers the first field that did not fit its length prefix
/// (writing a cut-down version of it so the output stays well-formed).
#[derive(Debug, Default)]
pub struct Writer {
    out: Vec<u8>,
    overflow: Option<WireError>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes, or the first field that had to be cut.
    pub fn finish(self) -> Result<Vec<u8>, WireError> {
        match self.overflow {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }

    /// The bytes, over-long fields cut.
    pub fn finish_lossy(self) -> Vec<u8> {
        self.out
    }

    fn too_long(&mut self, field: &'static str, length: usize, max: usize) {
        if self.overflow.is_none() {
            self.overflow = Some(WireError::FieldTooLong { field, length, max });
        }
    }

    /// Bytes as they are (e.g. the body of a tagged field).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    pub fn i8(&mut self, v: i8) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub fn i16(&mut self, v: i16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub fn i32(&mut self, v: i32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    /// Kafka's `UNSIGNED_VARINT`.
    pub fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            // Truncation to the low 7 bits is the point of the encoding.
            self.out.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    /// A length or count prefix for a non-null `len` already within its form's limit.
    fn len_prefix(&mut self, len: usize, flexible: bool, wide: bool) {
        // Callers cut `len` to `MAX_STRING_LEN` or `max_count`, so the conversions cannot fail.
        if flexible {
            self.uvarint(u32::try_from(len + 1).unwrap_or(u32::MAX));
        } else if wide {
            self.i32(i32::try_from(len).unwrap_or(i32::MAX));
        } else {
            self.i16(i16::try_from(len).unwrap_or(i16::MAX));
        }
    }

    /// The null length or count: -1 (`i16` or `i32`), or compact 0.
    fn null_prefix(&mut self, flexible: bool, wide: bool) {
        if flexible {
            self.uvarint(0);
        } else if wide {
            self.i32(-1);
        } else {
            self.i16(-1);
        }
    }

    /// `STRING` / `COMPACT_STRING`, cut to [`MAX_STRING_LEN`] bytes at a character boundary if
    /// need be.
    pub fn string(&mut self, field: &'static str, s: &str, flexible: bool) {
        let s = if s.len() <= MAX_STRING_LEN {
            s
        } else {
            self.too_long(field, s.len(), MAX_STRING_LEN);
            let mut end = MAX_STRING_LEN;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            &s[..end]
        };
        self.len_prefix(s.len(), flexible, false);
        self.out.extend_from_slice(s.as_bytes());
    }

    /// `NULLABLE_STRING` / `COMPACT_NULLABLE_STRING`.
    pub fn nullable_string(&mut self, field: &'static str, s: Option<&str>, flexible: bool) {
        match s {
            Some(s) => self.string(field, s, flexible),
            None => self.null_prefix(flexible, false),
        }
    }

    /// Non-nullable `BYTES` / `COMPACT_BYTES`, cut if longer than the prefix can say.
    pub fn bytes(&mut self, field: &'static str, b: &[u8], flexible: bool) {
        let max = max_count(flexible);
        let b = if b.len() > max {
            self.too_long(field, b.len(), max);
            &b[..max]
        } else {
            b
        };
        self.len_prefix(b.len(), flexible, true);
        self.out.extend_from_slice(b);
    }

    /// The null array.
    pub fn null_array(&mut self, flexible: bool) {
        self.null_prefix(flexible, true);
    }

    /// An array's count; returns how many elements the caller may write (fewer than `len` only
    /// when the prefix cannot say `len`).
    pub fn array_len(&mut self, field: &'static str, len: usize, flexible: bool) -> usize {
        let max = max_count(flexible);
        let len = if len > max {
            self.too_long(field, len, max);
            max
        } else {
            len
        };
        self.len_prefix(len, flexible, true);
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian_and_bounds_checked() {
        let mut w = Writer::new();
        w.i8(-2);
        w.i16(0x0102);
        w.i32(0x0304_0506);
        w.i64(-1);
        let bytes = w.finish().expect("nothing cut");
        assert_eq!(
            bytes,
            [0xfe, 1, 2, 3, 4, 5, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        let mut r = Reader::new(&bytes);
        assert_eq!(r.i8("a"), Ok(-2));
        assert_eq!(r.i16("b"), Ok(0x0102));
        assert_eq!(r.i32("c"), Ok(0x0304_0506));
        assert_eq!(r.remaining(), 8);
        assert_eq!(
            r.take(9, "d"),
            Err(WireError::Truncated {
                field: "d",
                needed: 9,
                remaining: 8
            })
        );
        // A failed read consumes nothing.
        assert_eq!(r.remaining(), 8);
        assert_eq!(r.i64("d"), Ok(-1));
        assert_eq!(
            r.i8("e"),
            Err(WireError::Truncated {
                field: "e",
                needed: 1,
                remaining: 0
            })
        );
        assert_eq!(r.take(0, "f"), Ok(&[][..]));
    }

    #[test]
    fn uvarints_round_trip_and_reject_over_long_or_wide_encodings() {
        for v in [0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 0x0fff_ffff, u32::MAX] {
            let mut w = Writer::new();
            w.uvarint(v);
            let bytes = w.finish_lossy();
            let mut r = Reader::new(&bytes);
            assert_eq!(r.uvarint("v"), Ok(v));
            assert_eq!(r.remaining(), 0);
        }
        let mut w = Writer::new();
        w.uvarint(300);
        assert_eq!(w.finish_lossy(), [0xac, 0x02]);
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]).uvarint("v"),
            Ok(u32::MAX)
        );
        let bad: [&[u8]; 3] = [
            // A fifth byte with more than 4 bits.
            &[0xff, 0xff, 0xff, 0xff, 0x10],
            // A fifth byte that continues.
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
            &[0xff, 0xff, 0xff, 0xff, 0xff],
        ];
        for bytes in bad {
            assert_eq!(
                Reader::new(bytes).uvarint("v"),
                Err(WireError::InvalidVarint { field: "v" })
            );
        }
        assert!(matches!(
            Reader::new(&[0x80, 0x80]).uvarint("v"),
            Err(WireError::Truncated { field: "v", .. })
        ));
    }

    #[test]
    fn strings_null_and_compact() {
        let mut w = Writer::new();
        w.string("a", "ab", false);
        w.string("b", "ab", true);
        w.nullable_string("c", None, false);
        w.nullable_string("d", None, true);
        w.nullable_string("e", Some(""), true);
        let bytes = w.finish().expect("nothing cut");
        assert_eq!(bytes, [0, 2, b'a', b'b', 3, b'a', b'b', 0xff, 0xff, 0, 1]);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.string("a", false).as_deref(), Ok("ab"));
        assert_eq!(r.nullable_string("b", true), Ok(Some("ab".into())));
        assert_eq!(r.nullable_string("c", false), Ok(None));
        assert_eq!(
            r.string("d", true),
            Err(WireError::NullField { field: "d" })
        );
        assert_eq!(r.string("e", true).as_deref(), Ok(""));

        // Any negative `i16` is null; invalid UTF-8 is replaced, as Java does.
        assert_eq!(
            Reader::new(&[0x80, 0x00]).nullable_string("s", false),
            Ok(None)
        );
        assert_eq!(
            Reader::new(&[0, 2, 0xff, b'g'])
                .string("s", false)
                .as_deref(),
            Ok("\u{fffd}g")
        );
        // A compact length over 0x7fff is refused before reading on; 0x7fff itself is only
        // short of bytes.
        assert_eq!(
            Reader::new(&[0x81, 0x80, 0x02]).string("s", true),
            Err(WireError::InvalidLength {
                field: "s",
                length: 0x8000
            })
        );
        assert!(matches!(
            Reader::new(&[0x80, 0x80, 0x02]).string("s", true),
            Err(WireError::Truncated {
                needed: 0x7fff,
                remaining: 0,
                ..
            })
        ));
    }

    #[test]
    fn over_long_strings_are_cut_at_a_character_boundary_and_reported() {
        let long = "é".repeat(20_000);
        for flexible in [false, true] {
            let mut w = Writer::new();
            w.string("first", &long, flexible);
            w.string("second", &long, flexible);
            let mut r = Reader::new(&w.out);
            let cut = r.string("s", flexible).expect("well-formed");
            assert_eq!(cut.len(), 32_766);
            assert!(long.starts_with(&cut));
            assert_eq!(
                w.finish(),
                Err(WireError::FieldTooLong {
                    field: "first",
                    length: 40_000,
                    max: MAX_STRING_LEN
                }),
                "the first cut field is reported"
            );
        }
        let exact = "x".repeat(MAX_STRING_LEN);
        let mut w = Writer::new();
        w.string("s", &exact, true);
        assert!(w.finish().is_ok());
    }

    #[test]
    fn bytes_and_arrays() {
        let mut w = Writer::new();
        w.bytes("a", &[1, 2], false);
        w.bytes("b", &[3], true);
        assert_eq!(w.array_len("c", 2, false), 2);
        assert_eq!(w.array_len("d", 0, true), 0);
        w.null_array(false);
        w.null_array(true);
        w.raw(&[9]);
        let bytes = w.finish().expect("nothing cut");
        assert_eq!(
            bytes,
            [0, 0, 0, 2, 1, 2, 2, 3, 0, 0, 0, 2, 1, 0xff, 0xff, 0xff, 0xff, 0, 9]
        );
        let mut r = Reader::new(&bytes);
        assert_eq!(r.bytes("a", false), Ok(&[1u8, 2][..]));
        assert_eq!(r.bytes("b", true), Ok(&[3u8][..]));
        assert_eq!(r.nullable_array_len("c", false), Ok(Some(2)));
        assert_eq!(r.array_len("d", true), Ok(0));
        assert_eq!(r.nullable_array_len("e", false), Ok(None));
        assert_eq!(
            r.array_len("f", true),
            Err(WireError::NullField { field: "f" })
        );

        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff]).bytes("b", false),
            Err(WireError::NullField { field: "b" })
        );
        assert_eq!(
            Reader::new(&[0]).bytes("b", true),
            Err(WireError::NullField { field: "b" })
        );
    }

    #[test]
    fn counts_larger_than_the_input_are_refused_before_allocating() {
        // Each claims about 2^31 elements or bytes with nothing behind it: refused from the
        // prefix alone (a reader that allocated first would abort the test on capacity).
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff]);
        assert_eq!(
            r.array_len("a", false),
            Err(WireError::ArrayTooLong {
                field: "a",
                count: i32::MAX as usize,
                remaining: 0
            })
        );
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]).nullable_array_len("a", true),
            Err(WireError::ArrayTooLong {
                field: "a",
                count: u32::MAX as usize - 1,
                remaining: 0
            })
        );
        // A count may not exceed the bytes left, even by one.
        assert_eq!(
            Reader::new(&[0, 0, 0, 3, 1, 2]).array_len("a", false),
            Err(WireError::ArrayTooLong {
                field: "a",
                count: 3,
                remaining: 2
            })
        );
        assert_eq!(
            Reader::new(&[0, 0, 0, 2, 1, 2]).array_len("a", false),
            Ok(2)
        );
        assert_eq!(
            Reader::new(&[0x7f, 0xff, 0xff, 0xff, 1]).bytes("b", false),
            Err(WireError::Truncated {
                field: "b",
                needed: i32::MAX as usize,
                remaining: 1
            })
        );
    }

    #[test]
    fn tagged_fields_are_skipped_within_bounds() {
        // Two tags: 0 with 2 bytes, 7 with none; then a trailing byte.
        let mut r = Reader::new(&[2, 0, 2, 0xaa, 0xbb, 7, 0, 0x42]);
        assert_eq!(r.skip_tagged_fields("t"), Ok(()));
        assert_eq!(r.remaining(), 1);
        assert!(matches!(
            Reader::new(&[1, 0, 0xff, 0xff, 0x03]).skip_tagged_fields("t"),
            Err(WireError::Truncated { field: "t", .. })
        ));
        assert!(matches!(
            Reader::new(&[3, 0, 0]).skip_tagged_fields("t"),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn errors_name_their_field() {
        assert_eq!(
            WireError::Truncated {
                field: "x.y",
                needed: 4,
                remaining: 1
            }
            .to_string(),
            "truncated x.y: needs 4 bytes, only 1 left"
        );
        assert_eq!(
            WireError::UnsupportedValueVersion {
                record: "OffsetCommitValue",
                version: 9,
                max: 4
            }
            .to_string(),
            "OffsetCommitValue version 9 is not supported (this broker reads 0..=4)"
        );
    }
}
