//! Parser for PostgreSQL's array text format: `{1,2,NULL}`,
//! `{{"a b","c\"d"},{e,f}}`, `[0:2]={1,2,3}`, with `;` as delimiter for `box`.

use bytes::Bytes;
use cdc_envelope::{Array, ArrayDim, Value};

use crate::pgtype::ValueError;

struct Parser<'a, F> {
    src: &'a Bytes,
    pos: usize,
    delim: u8,
    elem: F,
    /// Length of each dimension, once known.
    dims: Vec<Option<u32>>,
    /// Depth at which scalar elements sit, once known.
    leaf_depth: Option<usize>,
    elements: Vec<Value>,
}

fn err(msg: &str, pos: usize) -> ValueError {
    ValueError::Invalid(format!("malformed array literal: {msg} at position {pos}"))
}

const MAX_DIMS: usize = 6;

impl<F: Fn(&Bytes) -> Result<Value, ValueError>> Parser<'_, F> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Parses `{…}` at `depth`; returns the number of children.
    fn level(&mut self, depth: usize) -> Result<u32, ValueError> {
        if depth >= MAX_DIMS {
            return Err(err("too many dimensions", self.pos));
        }
        if self.peek() != Some(b'{') {
            return Err(err("expected '{'", self.pos));
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            if depth == 0 {
                return Ok(0);
            }
            return Err(err("empty sub-array", self.pos));
        }
        let mut count: u32 = 0;
        loop {
            self.skip_ws();
            if self.peek() == Some(b'{') {
                self.check_depth(depth + 1, false)?;
                let n = self.level(depth + 1)?;
                self.record_dim(depth + 1, n)?;
            } else {
                self.check_depth(depth + 1, true)?;
                self.element()?;
            }
            count = count
                .checked_add(1)
                .ok_or_else(|| err("too many elements", self.pos))?;
            self.skip_ws();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(count);
                }
                Some(b) if b == self.delim => self.pos += 1,
                _ => return Err(err("expected delimiter or '}'", self.pos)),
            }
        }
    }

    /// Scalars must all sit at the same depth.
    fn check_depth(&mut self, depth: usize, scalar: bool) -> Result<(), ValueError> {
        match (self.leaf_depth, scalar) {
            (None, true) => {
                self.leaf_depth = Some(depth);
                Ok(())
            }
            (Some(d), true) if d != depth => Err(err("inconsistent dimensions", self.pos)),
            (Some(d), false) if depth >= d => Err(err("inconsistent dimensions", self.pos)),
            _ => Ok(()),
        }
    }

    fn record_dim(&mut self, depth: usize, n: u32) -> Result<(), ValueError> {
        while self.dims.len() <= depth {
            self.dims.push(None);
        }
        match self.dims.get_mut(depth) {
            Some(slot @ None) => {
                *slot = Some(n);
                Ok(())
            }
            Some(Some(m)) if *m == n => Ok(()),
            _ => Err(err("sub-arrays of different lengths", self.pos)),
        }
    }

    fn element(&mut self) -> Result<(), ValueError> {
        let value = if self.peek() == Some(b'"') {
            self.pos += 1;
            let start = self.pos;
            let mut owned: Option<Vec<u8>> = None;
            loop {
                match self.peek() {
                    None => return Err(err("unterminated quoted element", self.pos)),
                    Some(b'"') => break,
                    Some(b'\\') => {
                        let buf = owned.get_or_insert_with(|| {
                            self.src.get(start..self.pos).unwrap_or_default().to_vec()
                        });
                        let escaped = self
                            .src
                            .get(self.pos + 1)
                            .copied()
                            .ok_or_else(|| err("dangling backslash", self.pos))?;
                        buf.push(escaped);
                        self.pos += 2;
                    }
                    Some(b) => {
                        if let Some(buf) = owned.as_mut() {
                            buf.push(b);
                        }
                        self.pos += 1;
                    }
                }
            }
            let end = self.pos;
            self.pos += 1;
            let text = match owned {
                Some(v) => Bytes::from(v),
                None => self.slice(start, end),
            };
            (self.elem)(&text)?
        } else {
            let start = self.pos;
            let mut owned: Option<Vec<u8>> = None;
            // Position after the last non-space byte (trailing spaces are not part of it).
            let mut end = start;
            loop {
                match self.peek() {
                    None => return Err(err("unterminated array", self.pos)),
                    Some(b) if b == self.delim || b == b'}' => break,
                    Some(b'{') | Some(b'"') => return Err(err("unexpected character", self.pos)),
                    Some(b'\\') => {
                        let buf = owned.get_or_insert_with(|| {
                            self.src.get(start..self.pos).unwrap_or_default().to_vec()
                        });
                        let escaped = self
                            .src
                            .get(self.pos + 1)
                            .copied()
                            .ok_or_else(|| err("dangling backslash", self.pos))?;
                        buf.push(escaped);
                        self.pos += 2;
                        end = self.pos;
                    }
                    Some(b) => {
                        if let Some(buf) = owned.as_mut() {
                            buf.push(b);
                        }
                        self.pos += 1;
                        if !b.is_ascii_whitespace() {
                            end = self.pos;
                        }
                    }
                }
            }
            match owned {
                Some(mut v) => {
                    while v.last().is_some_and(|b| b.is_ascii_whitespace()) {
                        v.pop();
                    }
                    (self.elem)(&Bytes::from(v))?
                }
                None => {
                    let text = self.slice(start, end);
                    if text.is_empty() {
                        return Err(err("empty unquoted element", start));
                    }
                    if text.eq_ignore_ascii_case(b"NULL") {
                        Value::Null
                    } else {
                        (self.elem)(&text)?
                    }
                }
            }
        };
        self.elements.push(value);
        Ok(())
    }

    fn slice(&self, start: usize, end: usize) -> Bytes {
        if start <= end && end <= self.src.len() {
            self.src.slice(start..end)
        } else {
            Bytes::new()
        }
    }

    /// `[lo:hi][lo:hi]=` before the braces.
    fn bounds(&mut self) -> Result<Vec<(i32, i32)>, ValueError> {
        let mut out = Vec::new();
        while self.peek() == Some(b'[') {
            if out.len() >= MAX_DIMS {
                return Err(err("too many dimensions", self.pos));
            }
            self.pos += 1;
            let lo = self.int()?;
            if self.peek() != Some(b':') {
                return Err(err("expected ':'", self.pos));
            }
            self.pos += 1;
            let hi = self.int()?;
            if self.peek() != Some(b']') {
                return Err(err("expected ']'", self.pos));
            }
            self.pos += 1;
            out.push((lo, hi));
        }
        if !out.is_empty() {
            if self.peek() != Some(b'=') {
                return Err(err("expected '='", self.pos));
            }
            self.pos += 1;
        }
        Ok(out)
    }

    fn int(&mut self) -> Result<i32, ValueError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let s = self.src.get(start..self.pos).unwrap_or_default();
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| err("invalid bound", start))
    }
}

/// Parses an array literal, converting each non-NULL element with `elem`.
pub(crate) fn parse_array(
    src: &Bytes,
    delim: u8,
    elem: impl Fn(&Bytes) -> Result<Value, ValueError>,
) -> Result<Array, ValueError> {
    let mut p = Parser {
        src,
        pos: 0,
        delim,
        elem,
        dims: vec![None],
        leaf_depth: None,
        elements: Vec::new(),
    };
    let bounds = p.bounds()?;
    let n = p.level(0)?;
    p.skip_ws();
    if p.pos != src.len() {
        return Err(err("junk after closing '}'", p.pos));
    }
    if n == 0 {
        return Ok(Array {
            dims: Vec::new(),
            elements: Vec::new(),
        });
    }
    if let Some(first) = p.dims.first_mut() {
        *first = Some(n);
    }
    let lens: Vec<u32> = p.dims.iter().map(|d| d.unwrap_or(0)).collect();
    if !bounds.is_empty() && bounds.len() != lens.len() {
        return Err(err("bounds do not match dimensions", 0));
    }
    let mut dims = Vec::with_capacity(lens.len());
    for (i, &len) in lens.iter().enumerate() {
        let lower_bound = match bounds.get(i) {
            Some(&(lo, hi)) => {
                if i64::from(hi) - i64::from(lo) + 1 != i64::from(len) {
                    return Err(err("bounds do not match dimensions", 0));
                }
                lo
            }
            None => 1,
        };
        dims.push(ArrayDim { len, lower_bound });
    }
    Ok(Array {
        dims,
        elements: p.elements,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cdc_envelope::Str;

    fn text(s: &str) -> Result<Array, ValueError> {
        parse_array(&Bytes::copy_from_slice(s.as_bytes()), b',', |b| {
            Str::from_utf8(b.clone())
                .map(Value::Text)
                .map_err(|_| ValueError::Invalid("utf8".into()))
        })
    }

    fn t(s: &str) -> Value {
        Value::Text(Str::from(s))
    }

    #[test]
    fn one_dimension() {
        assert_eq!(
            text("{a,b,NULL,\"NULL\",\"\"}"),
            Ok(Array::one_dim(vec![
                t("a"),
                t("b"),
                Value::Null,
                t("NULL"),
                t("")
            ]))
        );
        assert_eq!(
            text("{\"a\\\"b\",\"c\\\\d\",\"x,y\",\" sp \"}"),
            Ok(Array::one_dim(vec![
                t("a\"b"),
                t("c\\d"),
                t("x,y"),
                t(" sp ")
            ]))
        );
        assert_eq!(
            text("{}"),
            Ok(Array {
                dims: vec![],
                elements: vec![]
            })
        );
        assert_eq!(text("{ a , b }"), Ok(Array::one_dim(vec![t("a"), t("b")])));
    }

    #[test]
    fn multi_dimension_and_bounds() {
        let a = text("{{1,2,3},{4,5,6}}").expect("2-d");
        assert_eq!(
            a.dims,
            vec![
                ArrayDim {
                    len: 2,
                    lower_bound: 1
                },
                ArrayDim {
                    len: 3,
                    lower_bound: 1
                }
            ]
        );
        assert_eq!(a.elements.len(), 6);
        let b = text("[0:2]={x,y,z}").expect("bounds");
        assert_eq!(
            b.dims,
            vec![ArrayDim {
                len: 3,
                lower_bound: 0
            }]
        );
        let c = text("[-1:0][3:4]={{a,b},{c,d}}").expect("2-d bounds");
        assert_eq!(
            c.dims,
            vec![
                ArrayDim {
                    len: 2,
                    lower_bound: -1
                },
                ArrayDim {
                    len: 2,
                    lower_bound: 3
                }
            ]
        );
    }

    #[test]
    fn malformed() {
        for s in [
            "",
            "{",
            "{a",
            "{{a},b}",
            "{{a,b},{c}}",
            "{a}}",
            "[0:1]={a}",
            "{\"a}",
            "{a,}",
            "{{}}",
            "{a\\",
        ] {
            assert!(text(s).is_err(), "{s}");
        }
    }

    #[test]
    fn box_delimiter() {
        let a = parse_array(
            &Bytes::from_static(b"{(1,1),(0,0);(2,2),(1,1)}"),
            b';',
            |b| {
                Ok(Value::Text(
                    Str::from_utf8(b.clone()).map_err(|_| ValueError::Invalid("utf8".into()))?,
                ))
            },
        );
        assert_eq!(
            a,
            Ok(Array::one_dim(vec![t("(1,1),(0,0)"), t("(2,2),(1,1)")]))
        );
    }
}
