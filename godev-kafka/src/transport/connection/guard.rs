//! A bounds check of every response body before `kafka-protocol` decodes it.
//!
//! # What it protects against
//!
//! `kafka-protocol` 0.18 decodes `ARRAY` and `COMPACT_ARRAY` fields with
//! `Vec::with_capacity(n)`, where `n` is the element count read from the wire, before it
//! decodes a single element. A few hostile bytes (a JoinGroup response whose `members` count
//! is `0x7fffffff`) make it ask the allocator for tens of gigabytes; the allocation fails and
//! the process *aborts*: no `Result`, no unwinding, `catch_unwind` cannot help. Any peer we
//! talk to can send those bytes: a buggy or hostile broker, a non-Kafka service on the port,
//! a man in the middle on a plaintext connection.
//!
//! # How
//!
//! Each response type the project decodes has a [`Layout`]: a compact table, written here,
//! of its fields per version (fixed-width integers, strings, bytes, arrays, nested structs and
//! the known tagged fields of flexible versions). [`check`] walks a response body along that
//! table and refuses it, with a [`Malformed`] naming the field and the byte offset, when an
//! array count, a string or bytes length, a tagged-field count or a tagged-field size is
//! larger than the bytes that remain. Every array element takes at least one byte on the wire
//! (a test checks this for every table), so a count that passed is one the bytes back: the
//! capacity `kafka-protocol` then reserves is the length it would reach anyway. Unknown
//! tagged fields are skipped by their size; known ones are walked inside their size. Null
//! arrays, strings and bytes (`-1`, compact `0`) are accepted: whether a field may be null is
//! `kafka-protocol`'s to judge, and a null allocates nothing.
//!
//! The walk allocates nothing and touches each byte of structure once; record data
//! (`FetchResponse.records`) is a bytes field here, skipped by its length.
//!
//! The [`Guarded`] trait names the layout of a response type, and
//! [`Connection::call`](super::Connection::call) requires it, so a response type
//! without a layout does not compile. The tests encode a populated message of every type at
//! every version `kafka-protocol` knows and require the walk to account for exactly its bytes:
//! a wrong table entry fails them, and so does a `kafka-protocol` upgrade that adds a version.
//!
//! # When it can go
//!
//! Upstream has fixes (kafka-protocol PRs #152, #161, #200) that bound the reserved capacity,
//! unreleased as of 0.18. Once a release with them is the dependency, the walk in front of
//! every decode is redundant and this module can be reduced to nothing; keep its tamper
//! tests either way (pointed at the decoder), they are what shows a hostile count is an error.

use std::fmt;

use kafka_protocol::messages as m;

/// The wire type of one field.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    /// A fixed number of bytes: INT8 and BOOLEAN 1, INT16 2, INT32 4, INT64 8, UUID 16.
    Fixed(usize),
    /// STRING (`i16` length) or, in flexible versions, COMPACT_STRING (varint length + 1).
    Str,
    /// BYTES (`i32` length) or, in flexible versions, COMPACT_BYTES (varint length + 1).
    Bytes,
    /// A nested struct, inline (no count, no null marker).
    Struct(&'static Struct),
    /// ARRAY (`i32` count) or, in flexible versions, COMPACT_ARRAY (varint count + 1).
    Array(&'static Ty),
}

const I8: Ty = Ty::Fixed(1);
const BOOL: Ty = Ty::Fixed(1);
const I16: Ty = Ty::Fixed(2);
const I32: Ty = Ty::Fixed(4);
const I64: Ty = Ty::Fixed(8);
const UUID: Ty = Ty::Fixed(16);
const STR: Ty = Ty::Str;
const BYTES: Ty = Ty::Bytes;

/// An array of `$s` structs.
macro_rules! array_of {
    ($s:ident) => {
        Ty::Array(&Ty::Struct(&$s))
    };
}

/// One field of a struct and the versions that have it.
#[derive(Debug)]
pub(crate) struct Field {
    name: &'static str,
    min: i16,
    max: i16,
    ty: Ty,
}

/// A field in every version.
const fn all(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        min: 0,
        max: i16::MAX,
        ty,
    }
}

/// A field from version `min` on.
const fn since(min: i16, name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        min,
        max: i16::MAX,
        ty,
    }
}

/// A field up to and including version `max`.
const fn until(max: i16, name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        min: 0,
        max,
        ty,
    }
}

/// A field in versions `min..=max`.
const fn span(min: i16, max: i16, name: &'static str, ty: Ty) -> Field {
    Field { name, min, max, ty }
}

/// A tagged field `kafka-protocol` decodes by type (an unknown tag is skipped by its size).
#[derive(Debug)]
pub(crate) struct Tagged {
    tag: u32,
    min: i16,
    name: &'static str,
    ty: Ty,
}

/// Tagged field `tag`, known from version `min` on.
const fn tag(tag: u32, min: i16, name: &'static str, ty: Ty) -> Tagged {
    Tagged { tag, min, name, ty }
}

/// The fields of one struct, in wire order, and its known tagged fields.
#[derive(Debug)]
pub(crate) struct Struct {
    fields: &'static [Field],
    tagged: &'static [Tagged],
}

impl Struct {
    /// A struct without known tagged fields.
    const fn new(fields: &'static [Field]) -> Self {
        Self {
            fields,
            tagged: &[],
        }
    }

    /// A struct with known tagged fields.
    const fn with_tags(fields: &'static [Field], tagged: &'static [Tagged]) -> Self {
        Self { fields, tagged }
    }
}

/// The wire layout of one message type, for every version `kafka-protocol` decodes.
#[derive(Debug)]
pub(crate) struct Layout {
    /// The message name, for errors (`JoinGroupResponse`).
    pub(crate) message: &'static str,
    /// The lowest version the layout describes.
    pub(crate) min_version: i16,
    /// The highest version the layout describes.
    pub(crate) max_version: i16,
    /// The first flexible version (compact lengths, tagged fields); [`NEVER`] if none is.
    pub(crate) flexible: i16,
    /// The top-level struct.
    root: Struct,
}

/// [`Layout::flexible`] of a message without flexible versions.
const NEVER: i16 = i16::MAX;

/// A response type whose body [`check`] can walk before `kafka-protocol` decodes it.
///
/// [`Connection::call`](super::Connection::call) and
/// [`decode_response`](super::decode_response) require it, so every response the
/// project decodes has a layout.
pub(crate) trait Guarded {
    /// The wire layout of the body, for every version in the type's `Message::VERSIONS`.
    const LAYOUT: &'static Layout;
}

/// A response that [`check`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    message: &'static str,
    version: i16,
    problem: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed {} v{}: {}",
            self.message, self.version, self.problem
        )
    }
}

impl std::error::Error for Malformed {}

/// Walks `body` as `version` of `layout` and answers how many bytes the layout accounts for.
///
/// Byte offsets in errors count from the start of `body`. Trailing bytes are left to the
/// caller (`kafka-protocol` ignores them too).
///
/// # Errors
///
/// A count or length that exceeds the bytes remaining, a negative length other than the
/// null marker, a truncated fixed-width field or varint, a known tagged field whose value
/// does not fill its declared size, or a version the layout does not describe.
pub(crate) fn check(layout: &Layout, version: i16, body: &[u8]) -> Result<usize, Malformed> {
    walk(layout, version, body, None)
}

/// Like [`check`], and records where each count and length prefix was read.
#[cfg(test)]
pub(crate) fn check_marked(
    layout: &Layout,
    version: i16,
    body: &[u8],
    marks: &mut Vec<Mark>,
) -> Result<usize, Malformed> {
    walk(layout, version, body, Some(marks))
}

/// What a [`Mark`] prefix counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    /// The element count of an array.
    Count,
    /// The byte length of a string or bytes field.
    Length,
    /// The number of tagged fields of a struct.
    TagCount,
    /// The byte size of one tagged field.
    TagSize,
}

/// Where the walk read one count or length prefix (for the tamper tests).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(test), expect(dead_code, reason = "read by the tamper tests"))]
pub(crate) struct Mark {
    /// Its offset in the body.
    pub(crate) at: usize,
    /// Its width in bytes.
    pub(crate) width: usize,
    /// Whether it is an unsigned varint (else a big-endian `i16` or `i32`).
    pub(crate) varint: bool,
    /// What it counts.
    pub(crate) prefix: Prefix,
    /// The field it belongs to (empty for the elements of an array of strings).
    pub(crate) field: &'static str,
}

fn walk(
    layout: &Layout,
    version: i16,
    body: &[u8],
    marks: Option<&mut Vec<Mark>>,
) -> Result<usize, Malformed> {
    let malformed = |problem| Malformed {
        message: layout.message,
        version,
        problem,
    };
    if version < layout.min_version || version > layout.max_version {
        return Err(malformed(format!(
            "no layout for this version (v{} to v{} are known)",
            layout.min_version, layout.max_version
        )));
    }
    let mut walker = Walker {
        buf: body,
        pos: 0,
        end: body.len(),
        version,
        flexible: version >= layout.flexible,
        marks,
    };
    walker
        .walk_struct(&layout.root)
        .map_err(|fault| malformed(fault.to_string()))?;
    Ok(walker.pos)
}

/// The name of the tagged-field section of a struct, in errors (as in the Java client).
const TAGGED_FIELDS: &str = "_tagged_fields";

/// What is wrong, and at which field path (`topics[1].partitions`).
#[derive(Debug)]
struct Fault {
    kind: &'static str,
    path: String,
    detail: String,
}

impl Fault {
    fn new(kind: &'static str, name: &str, detail: String) -> Self {
        Self {
            kind,
            path: name.to_owned(),
            detail,
        }
    }

    /// The fault as seen from the struct or array that holds it.
    fn within(mut self, outer: &str, index: Option<usize>) -> Self {
        let head = match index {
            Some(i) => format!("{outer}[{i}]"),
            None if outer.is_empty() => return self,
            None => outer.to_owned(),
        };
        self.path = if self.path.is_empty() {
            head
        } else {
            format!("{head}.{}", self.path)
        };
        self
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}` {}", self.kind, self.path, self.detail)
    }
}

/// A cursor over the body; `end` shrinks to a tagged field's size while its value is walked.
struct Walker<'b, 'm> {
    buf: &'b [u8],
    pos: usize,
    end: usize,
    version: i16,
    flexible: bool,
    marks: Option<&'m mut Vec<Mark>>,
}

impl Walker<'_, '_> {
    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    fn mark(&mut self, at: usize, varint: bool, prefix: Prefix, field: &'static str) {
        let width = self.pos - at;
        if let Some(marks) = self.marks.as_deref_mut() {
            marks.push(Mark {
                at,
                width,
                varint,
                prefix,
                field,
            });
        }
    }

    fn walk_struct(&mut self, s: &Struct) -> Result<(), Fault> {
        for field in s.fields {
            if (field.min..=field.max).contains(&self.version) {
                self.walk(&field.ty, field.name)?;
            }
        }
        if self.flexible {
            self.tagged_fields(s.tagged)?;
        }
        Ok(())
    }

    fn walk(&mut self, ty: &Ty, name: &'static str) -> Result<(), Fault> {
        match *ty {
            Ty::Fixed(width) => self.fixed(name, width).map(drop),
            Ty::Str => self.sized(name, "string", 2),
            Ty::Bytes => self.sized(name, "bytes", 4),
            Ty::Struct(s) => self.walk_struct(s).map_err(|f| f.within(name, None)),
            Ty::Array(elem) => self.array(name, elem),
        }
    }

    /// Steps over `width` bytes and answers them.
    fn fixed(&mut self, name: &str, width: usize) -> Result<&[u8], Fault> {
        let remaining = self.remaining();
        if width > remaining {
            return Err(Fault::new(
                "field",
                name,
                format!(
                    "needs {width} bytes at byte {} but {remaining} bytes remain",
                    self.pos
                ),
            ));
        }
        let at = self.pos;
        self.pos += width;
        Ok(&self.buf[at..self.pos])
    }

    /// An unsigned varint of at most 32 bits (5 bytes).
    fn varint(&mut self, kind: &'static str, name: &str) -> Result<u32, Fault> {
        let at = self.pos;
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let Some(&byte) = self.buf[..self.end].get(self.pos) else {
                return Err(Fault::new(
                    kind,
                    name,
                    format!("has a varint cut off at byte {at}"),
                ));
            };
            self.pos += 1;
            if shift == 28 && byte > 0x0f {
                break;
            }
            value |= u32::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(Fault::new(
            kind,
            name,
            format!("has a varint longer than 32 bits at byte {at}"),
        ))
    }

    /// A length or count prefix: `classic` bytes big-endian in classic versions, varint
    /// length + 1 in flexible ones. `None` is the null marker.
    fn prefix(
        &mut self,
        kind: &'static str,
        name: &'static str,
        classic: usize,
        prefix: Prefix,
    ) -> Result<Option<usize>, Fault> {
        let at = self.pos;
        let value = if self.flexible {
            let raw = self.varint(kind, name)?;
            self.mark(at, true, prefix, name);
            i64::from(raw) - 1
        } else {
            let bytes = self.fixed(name, classic)?;
            let value = match *bytes {
                [a, b] => i64::from(i16::from_be_bytes([a, b])),
                [a, b, c, d] => i64::from(i32::from_be_bytes([a, b, c, d])),
                _ => unreachable!("prefixes are 2 or 4 bytes wide"),
            };
            self.mark(at, false, prefix, name);
            value
        };
        match value {
            -1 => Ok(None),
            n if n < -1 => Err(Fault::new(
                kind,
                name,
                format!("declares a negative length {n} at byte {at}"),
            )),
            n => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
        }
    }

    /// A string or bytes field.
    fn sized(
        &mut self,
        name: &'static str,
        kind: &'static str,
        classic: usize,
    ) -> Result<(), Fault> {
        let at = self.pos;
        if let Some(len) = self.prefix(kind, name, classic, Prefix::Length)? {
            let remaining = self.remaining();
            if len > remaining {
                return Err(Fault::new(
                    kind,
                    name,
                    format!("declares {len} bytes at byte {at} but {remaining} bytes remain"),
                ));
            }
            self.pos += len;
        }
        Ok(())
    }

    fn array(&mut self, name: &'static str, elem: &Ty) -> Result<(), Fault> {
        let at = self.pos;
        let Some(count) = self.prefix("array", name, 4, Prefix::Count)? else {
            return Ok(());
        };
        let remaining = self.remaining();
        if count > remaining {
            return Err(Fault::new(
                "array",
                name,
                format!("declares {count} elements at byte {at} but {remaining} bytes remain"),
            ));
        }
        if let Ty::Fixed(width) = *elem {
            let need = count.saturating_mul(width);
            if need > remaining {
                return Err(Fault::new(
                    "array",
                    name,
                    format!(
                        "declares {count} elements of {width} bytes at byte {at} but \
                         {remaining} bytes remain"
                    ),
                ));
            }
            self.pos += need;
            return Ok(());
        }
        for i in 0..count {
            self.walk(elem, "").map_err(|f| f.within(name, Some(i)))?;
        }
        Ok(())
    }

    /// The tagged-field section that ends every struct in flexible versions.
    fn tagged_fields(&mut self, known: &[Tagged]) -> Result<(), Fault> {
        let at = self.pos;
        let count = self.varint("section", TAGGED_FIELDS)?;
        self.mark(at, true, Prefix::TagCount, TAGGED_FIELDS);
        let remaining = self.remaining();
        if count as usize > remaining {
            return Err(Fault::new(
                "section",
                TAGGED_FIELDS,
                format!("declares {count} tagged fields at byte {at} but {remaining} bytes remain"),
            ));
        }
        for _ in 0..count {
            let tag = self.varint("section", TAGGED_FIELDS)?;
            let field = known.iter().find(|t| t.tag == tag && self.version >= t.min);
            let name = field.map_or(TAGGED_FIELDS, |t| t.name);
            let size_at = self.pos;
            let size = self.varint("tagged field", name)? as usize;
            self.mark(size_at, true, Prefix::TagSize, name);
            let remaining = self.remaining();
            if size > remaining {
                return Err(Fault::new(
                    "tagged field",
                    name,
                    format!(
                        "(tag {tag}) declares {size} bytes at byte {size_at} but {remaining} \
                         bytes remain"
                    ),
                ));
            }
            let Some(field) = field else {
                self.pos += size;
                continue;
            };
            let (start, outer_end) = (self.pos, self.end);
            self.end = start + size;
            let walked = self.walk(&field.ty, field.name);
            self.end = outer_end;
            walked?;
            if self.pos != start + size {
                return Err(Fault::new(
                    "tagged field",
                    name,
                    format!(
                        "(tag {tag}) declares {size} bytes at byte {size_at} but its value \
                         takes {}",
                        self.pos - start
                    ),
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The layouts. Field names are kafka-protocol's; versions are the ones it decodes.
// ---------------------------------------------------------------------------------------

/// Implements [`Guarded`] for response types.
macro_rules! guarded {
    ($($ty:path => $layout:ident),* $(,)?) => {
        $(impl Guarded for $ty {
            const LAYOUT: &'static Layout = &$layout;
        })*
    };
}

guarded! {
    m::ResponseHeader => RESPONSE_HEADER,
    m::ApiVersionsResponse => API_VERSIONS,
    m::MetadataResponse => METADATA,
    m::FindCoordinatorResponse => FIND_COORDINATOR,
    m::JoinGroupResponse => JOIN_GROUP,
    m::SyncGroupResponse => SYNC_GROUP,
    m::HeartbeatResponse => HEARTBEAT,
    m::LeaveGroupResponse => LEAVE_GROUP,
    m::OffsetFetchResponse => OFFSET_FETCH,
    m::OffsetCommitResponse => OFFSET_COMMIT,
    m::ListOffsetsResponse => LIST_OFFSETS,
    m::CreateTopicsResponse => CREATE_TOPICS,
    m::DescribeGroupsResponse => DESCRIBE_GROUPS,
    m::FetchResponse => FETCH,
    m::ProduceResponse => PRODUCE,
    m::InitProducerIdResponse => INIT_PRODUCER_ID,
    m::SaslHandshakeResponse => SASL_HANDSHAKE,
    m::SaslAuthenticateResponse => SASL_AUTHENTICATE,
}

static RESPONSE_HEADER: Layout = Layout {
    message: "ResponseHeader",
    min_version: 0,
    max_version: 1,
    flexible: 1,
    root: Struct::new(&[all("correlation_id", I32)]),
};

static API_VERSIONS: Layout = Layout {
    message: "ApiVersionsResponse",
    min_version: 0,
    max_version: 4,
    flexible: 3,
    root: Struct::with_tags(
        &[
            all("error_code", I16),
            all("api_keys", array_of!(API_VERSION)),
            since(1, "throttle_time_ms", I32),
        ],
        &[
            tag(0, 3, "supported_features", array_of!(SUPPORTED_FEATURE)),
            tag(1, 3, "finalized_features_epoch", I64),
            tag(2, 3, "finalized_features", array_of!(FINALIZED_FEATURE)),
            tag(3, 3, "zk_migration_ready", BOOL),
        ],
    ),
};
static API_VERSION: Struct = Struct::new(&[
    all("api_key", I16),
    all("min_version", I16),
    all("max_version", I16),
]);
static SUPPORTED_FEATURE: Struct = Struct::new(&[
    since(3, "name", STR),
    since(3, "min_version", I16),
    since(3, "max_version", I16),
]);
static FINALIZED_FEATURE: Struct = Struct::new(&[
    since(3, "name", STR),
    since(3, "max_version_level", I16),
    since(3, "min_version_level", I16),
]);

static METADATA: Layout = Layout {
    message: "MetadataResponse",
    min_version: 0,
    max_version: 13,
    flexible: 9,
    root: Struct::new(&[
        since(3, "throttle_time_ms", I32),
        all("brokers", array_of!(METADATA_BROKER)),
        since(2, "cluster_id", STR),
        since(1, "controller_id", I32),
        all("topics", array_of!(METADATA_TOPIC)),
        span(8, 10, "cluster_authorized_operations", I32),
        since(13, "error_code", I16),
    ]),
};
static METADATA_BROKER: Struct = Struct::new(&[
    all("node_id", I32),
    all("host", STR),
    all("port", I32),
    since(1, "rack", STR),
]);
static METADATA_TOPIC: Struct = Struct::new(&[
    all("error_code", I16),
    all("name", STR),
    since(10, "topic_id", UUID),
    since(1, "is_internal", BOOL),
    all("partitions", array_of!(METADATA_PARTITION)),
    since(8, "topic_authorized_operations", I32),
]);
static METADATA_PARTITION: Struct = Struct::new(&[
    all("error_code", I16),
    all("partition_index", I32),
    all("leader_id", I32),
    since(7, "leader_epoch", I32),
    all("replica_nodes", Ty::Array(&I32)),
    all("isr_nodes", Ty::Array(&I32)),
    since(5, "offline_replicas", Ty::Array(&I32)),
]);

static FIND_COORDINATOR: Layout = Layout {
    message: "FindCoordinatorResponse",
    min_version: 0,
    max_version: 6,
    flexible: 3,
    root: Struct::new(&[
        since(1, "throttle_time_ms", I32),
        until(3, "error_code", I16),
        span(1, 3, "error_message", STR),
        until(3, "node_id", I32),
        until(3, "host", STR),
        until(3, "port", I32),
        since(4, "coordinators", array_of!(COORDINATOR)),
    ]),
};
static COORDINATOR: Struct = Struct::new(&[
    since(4, "key", STR),
    since(4, "node_id", I32),
    since(4, "host", STR),
    since(4, "port", I32),
    since(4, "error_code", I16),
    since(4, "error_message", STR),
]);

static JOIN_GROUP: Layout = Layout {
    message: "JoinGroupResponse",
    min_version: 0,
    max_version: 9,
    flexible: 6,
    root: Struct::new(&[
        since(2, "throttle_time_ms", I32),
        all("error_code", I16),
        all("generation_id", I32),
        since(7, "protocol_type", STR),
        all("protocol_name", STR),
        all("leader", STR),
        since(9, "skip_assignment", BOOL),
        all("member_id", STR),
        all("members", array_of!(JOIN_GROUP_MEMBER)),
    ]),
};
static JOIN_GROUP_MEMBER: Struct = Struct::new(&[
    all("member_id", STR),
    since(5, "group_instance_id", STR),
    all("metadata", BYTES),
]);

static SYNC_GROUP: Layout = Layout {
    message: "SyncGroupResponse",
    min_version: 0,
    max_version: 5,
    flexible: 4,
    root: Struct::new(&[
        since(1, "throttle_time_ms", I32),
        all("error_code", I16),
        since(5, "protocol_type", STR),
        since(5, "protocol_name", STR),
        all("assignment", BYTES),
    ]),
};

static HEARTBEAT: Layout = Layout {
    message: "HeartbeatResponse",
    min_version: 0,
    max_version: 4,
    flexible: 4,
    root: Struct::new(&[since(1, "throttle_time_ms", I32), all("error_code", I16)]),
};

static LEAVE_GROUP: Layout = Layout {
    message: "LeaveGroupResponse",
    min_version: 0,
    max_version: 5,
    flexible: 4,
    root: Struct::new(&[
        since(1, "throttle_time_ms", I32),
        all("error_code", I16),
        since(3, "members", array_of!(LEAVE_GROUP_MEMBER)),
    ]),
};
static LEAVE_GROUP_MEMBER: Struct = Struct::new(&[
    since(3, "member_id", STR),
    since(3, "group_instance_id", STR),
    since(3, "error_code", I16),
]);

static OFFSET_FETCH: Layout = Layout {
    message: "OffsetFetchResponse",
    min_version: 1,
    max_version: 10,
    flexible: 6,
    root: Struct::new(&[
        since(3, "throttle_time_ms", I32),
        until(7, "topics", array_of!(OFFSET_FETCH_TOPIC)),
        span(2, 7, "error_code", I16),
        since(8, "groups", array_of!(OFFSET_FETCH_GROUP)),
    ]),
};
static OFFSET_FETCH_TOPIC: Struct = Struct::new(&[
    until(7, "name", STR),
    until(7, "partitions", array_of!(OFFSET_FETCH_PARTITION)),
]);
static OFFSET_FETCH_PARTITION: Struct = Struct::new(&[
    until(7, "partition_index", I32),
    until(7, "committed_offset", I64),
    span(5, 7, "committed_leader_epoch", I32),
    until(7, "metadata", STR),
    until(7, "error_code", I16),
]);
static OFFSET_FETCH_GROUP: Struct = Struct::new(&[
    since(8, "group_id", STR),
    since(8, "topics", array_of!(OFFSET_FETCH_GROUP_TOPIC)),
    since(8, "error_code", I16),
]);
static OFFSET_FETCH_GROUP_TOPIC: Struct = Struct::new(&[
    span(8, 9, "name", STR),
    since(10, "topic_id", UUID),
    since(8, "partitions", array_of!(OFFSET_FETCH_GROUP_PARTITION)),
]);
static OFFSET_FETCH_GROUP_PARTITION: Struct = Struct::new(&[
    since(8, "partition_index", I32),
    since(8, "committed_offset", I64),
    since(8, "committed_leader_epoch", I32),
    since(8, "metadata", STR),
    since(8, "error_code", I16),
]);

static OFFSET_COMMIT: Layout = Layout {
    message: "OffsetCommitResponse",
    min_version: 2,
    max_version: 10,
    flexible: 8,
    root: Struct::new(&[
        since(3, "throttle_time_ms", I32),
        all("topics", array_of!(OFFSET_COMMIT_TOPIC)),
    ]),
};
static OFFSET_COMMIT_TOPIC: Struct = Struct::new(&[
    until(9, "name", STR),
    since(10, "topic_id", UUID),
    all("partitions", array_of!(OFFSET_COMMIT_PARTITION)),
]);
static OFFSET_COMMIT_PARTITION: Struct =
    Struct::new(&[all("partition_index", I32), all("error_code", I16)]);

static LIST_OFFSETS: Layout = Layout {
    message: "ListOffsetsResponse",
    min_version: 1,
    max_version: 10,
    flexible: 6,
    root: Struct::new(&[
        since(2, "throttle_time_ms", I32),
        all("topics", array_of!(LIST_OFFSETS_TOPIC)),
    ]),
};
static LIST_OFFSETS_TOPIC: Struct = Struct::new(&[
    all("name", STR),
    all("partitions", array_of!(LIST_OFFSETS_PARTITION)),
]);
static LIST_OFFSETS_PARTITION: Struct = Struct::new(&[
    all("partition_index", I32),
    all("error_code", I16),
    all("timestamp", I64),
    all("offset", I64),
    since(4, "leader_epoch", I32),
]);

static CREATE_TOPICS: Layout = Layout {
    message: "CreateTopicsResponse",
    min_version: 2,
    max_version: 7,
    flexible: 5,
    root: Struct::new(&[
        all("throttle_time_ms", I32),
        all("topics", array_of!(CREATE_TOPICS_RESULT)),
    ]),
};
static CREATE_TOPICS_RESULT: Struct = Struct::with_tags(
    &[
        all("name", STR),
        since(7, "topic_id", UUID),
        all("error_code", I16),
        all("error_message", STR),
        since(5, "num_partitions", I32),
        since(5, "replication_factor", I16),
        since(5, "configs", array_of!(CREATE_TOPICS_CONFIG)),
    ],
    &[tag(0, 5, "topic_config_error_code", I16)],
);
static CREATE_TOPICS_CONFIG: Struct = Struct::new(&[
    since(5, "name", STR),
    since(5, "value", STR),
    since(5, "read_only", BOOL),
    since(5, "config_source", I8),
    since(5, "is_sensitive", BOOL),
]);

static DESCRIBE_GROUPS: Layout = Layout {
    message: "DescribeGroupsResponse",
    min_version: 0,
    max_version: 6,
    flexible: 5,
    root: Struct::new(&[
        since(1, "throttle_time_ms", I32),
        all("groups", array_of!(DESCRIBED_GROUP)),
    ]),
};
static DESCRIBED_GROUP: Struct = Struct::new(&[
    all("error_code", I16),
    since(6, "error_message", STR),
    all("group_id", STR),
    all("group_state", STR),
    all("protocol_type", STR),
    all("protocol_data", STR),
    all("members", array_of!(DESCRIBED_GROUP_MEMBER)),
    since(3, "authorized_operations", I32),
]);
static DESCRIBED_GROUP_MEMBER: Struct = Struct::new(&[
    all("member_id", STR),
    since(4, "group_instance_id", STR),
    all("client_id", STR),
    all("client_host", STR),
    all("member_metadata", BYTES),
    all("member_assignment", BYTES),
]);

static FETCH: Layout = Layout {
    message: "FetchResponse",
    min_version: 4,
    max_version: 18,
    flexible: 12,
    root: Struct::with_tags(
        &[
            all("throttle_time_ms", I32),
            since(7, "error_code", I16),
            since(7, "session_id", I32),
            all("responses", array_of!(FETCH_TOPIC)),
        ],
        &[tag(0, 16, "node_endpoints", array_of!(FETCH_NODE_ENDPOINT))],
    ),
};
static FETCH_TOPIC: Struct = Struct::new(&[
    until(12, "topic", STR),
    since(13, "topic_id", UUID),
    all("partitions", array_of!(FETCH_PARTITION)),
]);
static FETCH_PARTITION: Struct = Struct::with_tags(
    &[
        all("partition_index", I32),
        all("error_code", I16),
        all("high_watermark", I64),
        all("last_stable_offset", I64),
        since(5, "log_start_offset", I64),
        all("aborted_transactions", array_of!(FETCH_ABORTED_TRANSACTION)),
        since(11, "preferred_read_replica", I32),
        all("records", BYTES),
    ],
    &[
        tag(
            0,
            12,
            "diverging_epoch",
            Ty::Struct(&FETCH_EPOCH_END_OFFSET),
        ),
        tag(1, 12, "current_leader", Ty::Struct(&FETCH_LEADER)),
        tag(2, 12, "snapshot_id", Ty::Struct(&FETCH_SNAPSHOT_ID)),
    ],
);
static FETCH_ABORTED_TRANSACTION: Struct =
    Struct::new(&[all("producer_id", I64), all("first_offset", I64)]);
static FETCH_EPOCH_END_OFFSET: Struct =
    Struct::new(&[since(12, "epoch", I32), since(12, "end_offset", I64)]);
static FETCH_LEADER: Struct =
    Struct::new(&[since(12, "leader_id", I32), since(12, "leader_epoch", I32)]);
static FETCH_SNAPSHOT_ID: Struct = Struct::new(&[all("end_offset", I64), all("epoch", I32)]);
static FETCH_NODE_ENDPOINT: Struct = Struct::new(&[
    since(16, "node_id", I32),
    since(16, "host", STR),
    since(16, "port", I32),
    since(16, "rack", STR),
]);

static PRODUCE: Layout = Layout {
    message: "ProduceResponse",
    min_version: 3,
    max_version: 13,
    flexible: 9,
    root: Struct::with_tags(
        &[
            all("responses", array_of!(PRODUCE_TOPIC)),
            all("throttle_time_ms", I32),
        ],
        &[tag(
            0,
            10,
            "node_endpoints",
            array_of!(PRODUCE_NODE_ENDPOINT),
        )],
    ),
};
static PRODUCE_TOPIC: Struct = Struct::new(&[
    until(12, "name", STR),
    since(13, "topic_id", UUID),
    all("partition_responses", array_of!(PRODUCE_PARTITION)),
]);
static PRODUCE_PARTITION: Struct = Struct::with_tags(
    &[
        all("index", I32),
        all("error_code", I16),
        all("base_offset", I64),
        all("log_append_time_ms", I64),
        since(5, "log_start_offset", I64),
        since(8, "record_errors", array_of!(PRODUCE_RECORD_ERROR)),
        since(8, "error_message", STR),
    ],
    &[tag(0, 10, "current_leader", Ty::Struct(&PRODUCE_LEADER))],
);
static PRODUCE_RECORD_ERROR: Struct = Struct::new(&[
    since(8, "batch_index", I32),
    since(8, "batch_index_error_message", STR),
]);
static PRODUCE_LEADER: Struct =
    Struct::new(&[since(10, "leader_id", I32), since(10, "leader_epoch", I32)]);
static PRODUCE_NODE_ENDPOINT: Struct = Struct::new(&[
    since(10, "node_id", I32),
    since(10, "host", STR),
    since(10, "port", I32),
    since(10, "rack", STR),
]);

static INIT_PRODUCER_ID: Layout = Layout {
    message: "InitProducerIdResponse",
    min_version: 0,
    max_version: 6,
    flexible: 2,
    root: Struct::new(&[
        all("throttle_time_ms", I32),
        all("error_code", I16),
        all("producer_id", I64),
        all("producer_epoch", I16),
        since(6, "ongoing_txn_producer_id", I64),
        since(6, "ongoing_txn_producer_epoch", I16),
    ]),
};

static SASL_HANDSHAKE: Layout = Layout {
    message: "SaslHandshakeResponse",
    min_version: 0,
    max_version: 1,
    flexible: NEVER,
    root: Struct::new(&[all("error_code", I16), all("mechanisms", Ty::Array(&STR))]),
};

static SASL_AUTHENTICATE: Layout = Layout {
    message: "SaslAuthenticateResponse",
    min_version: 0,
    max_version: 2,
    flexible: 2,
    root: Struct::new(&[
        all("error_code", I16),
        all("error_message", STR),
        all("auth_bytes", BYTES),
        since(1, "session_lifetime_ms", I64),
    ]),
};

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use bytes::{BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::api_versions_response::{
        ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
    };
    use kafka_protocol::messages::create_topics_response::{
        CreatableTopicConfigs, CreatableTopicResult,
    };
    use kafka_protocol::messages::describe_groups_response::{
        DescribedGroup, DescribedGroupMember,
    };
    use kafka_protocol::messages::fetch_response::{
        self, AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData, SnapshotId,
    };
    use kafka_protocol::messages::find_coordinator_response::Coordinator;
    use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
    use kafka_protocol::messages::leave_group_response::MemberResponse;
    use kafka_protocol::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
    };
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::offset_commit_response::{
        OffsetCommitResponsePartition, OffsetCommitResponseTopic,
    };
    use kafka_protocol::messages::offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
        OffsetFetchResponseTopic, OffsetFetchResponseTopics,
    };
    use kafka_protocol::messages::produce_response::{
        self, BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::{
        ApiVersionsResponse, BrokerId, CreateTopicsResponse, DescribeGroupsResponse, FetchResponse,
        FindCoordinatorResponse, GroupId, HeartbeatResponse, InitProducerIdResponse,
        JoinGroupResponse, LeaveGroupResponse, ListOffsetsResponse, MetadataResponse,
        OffsetCommitResponse, OffsetFetchResponse, ProduceResponse, ProducerId, ResponseHeader,
        SaslAuthenticateResponse, SaslHandshakeResponse, SyncGroupResponse, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, StrBytes};

    use super::*;
    use crate::Error;
    use crate::transport::connection::decode_response;

    /// Applies `f` when `cond` holds: builds a message with only the fields of one version.
    trait When: Sized {
        fn when(self, cond: bool, f: impl FnOnce(Self) -> Self) -> Self {
            if cond { f(self) } else { self }
        }
    }
    impl<T> When for T {}

    fn s(text: &str) -> StrBytes {
        StrBytes::from_string(text.to_owned())
    }

    fn b(bytes: &'static [u8]) -> Bytes {
        Bytes::from_static(bytes)
    }

    /// Two elements, built from their index: every array in the tests has two.
    fn two<T>(f: impl Fn(i32) -> T) -> Vec<T> {
        vec![f(0), f(1)]
    }

    /// An unknown tagged field, skipped by the walk and kept by kafka-protocol.
    fn future<T>(with: impl FnOnce(i32, Bytes) -> T) -> T {
        with(99, b(FUTURE))
    }

    /// The value of the unknown tagged fields the test messages carry.
    const FUTURE: &[u8] = b"from a future version";

    fn encode<T: Encodable>(message: &T, version: i16) -> Bytes {
        let mut buf = BytesMut::new();
        message
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("encode v{version}: {e}"));
        buf.freeze()
    }

    fn header(version: i16) -> Bytes {
        let header = ResponseHeader::default()
            .with_correlation_id(77)
            .when(version >= 1, |h| h.with_unknown_tagged_field(3, b(FUTURE)));
        encode(&header, version)
    }

    fn frame(header: &[u8], body: &[u8]) -> Bytes {
        let mut buf = BytesMut::from(header);
        buf.put_slice(body);
        buf.freeze()
    }

    fn varint(mut value: u32) -> Vec<u8> {
        let mut out = Vec::new();
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
        out
    }

    /// The value a prefix holds (for a count or length: the count or length, -1 for null).
    fn read_prefix(bytes: &[u8], mark: &Mark) -> i64 {
        let raw = &bytes[mark.at..mark.at + mark.width];
        if mark.varint {
            let value = raw
                .iter()
                .enumerate()
                .fold(0u32, |v, (i, b)| v | (u32::from(b & 0x7f) << (7 * i)));
            match mark.prefix {
                Prefix::Count | Prefix::Length => i64::from(value) - 1,
                Prefix::TagCount | Prefix::TagSize => i64::from(value),
            }
        } else if mark.width == 2 {
            i64::from(i16::from_be_bytes([raw[0], raw[1]]))
        } else {
            i64::from(i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]))
        }
    }

    /// `bytes` with the prefix at `mark` set to its largest value, and the count or length
    /// the walk must then report.
    ///
    /// A varint grows to 5 bytes; the sizes of the tagged fields around it (in `marks`) grow
    /// by as much, so that the walk still meets the tampered prefix whole.
    fn tamper(bytes: &[u8], mark: &Mark, marks: &[Mark]) -> (Vec<u8>, u32) {
        let (replacement, declared) = match (mark.varint, mark.width) {
            (true, _) => match mark.prefix {
                Prefix::Count | Prefix::Length => (varint(1 << 31), i32::MAX as u32),
                Prefix::TagCount | Prefix::TagSize => (varint(i32::MAX as u32), i32::MAX as u32),
            },
            (false, 2) => (i16::MAX.to_be_bytes().to_vec(), i16::MAX as u32),
            (false, _) => (i32::MAX.to_be_bytes().to_vec(), i32::MAX as u32),
        };
        let mut enclosing: Vec<&Mark> = marks
            .iter()
            .filter(|t| t.prefix == Prefix::TagSize && t.at < mark.at)
            .filter(|t| {
                let start = t.at + t.width;
                (start..start + read_prefix(bytes, t) as usize).contains(&mark.at)
            })
            .collect();
        enclosing.sort_by_key(|t| std::cmp::Reverse(t.at));
        let mut out = bytes.to_vec();
        out.splice(mark.at..mark.at + mark.width, replacement.iter().copied());
        let mut grown = replacement.len() - mark.width;
        for size in enclosing {
            let value = read_prefix(bytes, size) as u32 + grown as u32;
            let encoded = varint(value);
            grown += encoded.len() - size.width;
            out.splice(size.at..size.at + size.width, encoded);
        }
        (out, declared)
    }

    /// What the walk must say about the prefix at `mark` once it declares `declared`.
    fn expected_problem(mark: &Mark, declared: u32) -> String {
        match mark.prefix {
            Prefix::Count => format!(
                "{}` declares {declared} elements at byte {}",
                mark.field, mark.at
            ),
            Prefix::Length => format!(
                "{}` declares {declared} bytes at byte {}",
                mark.field, mark.at
            ),
            Prefix::TagCount => format!(
                "{}` declares {declared} tagged fields at byte {}",
                mark.field, mark.at
            ),
            Prefix::TagSize => format!("declares {declared} bytes at byte {}", mark.at),
        }
    }

    fn assert_refused(result: crate::Result<impl Debug>, problem: &str) {
        match result {
            Err(Error::Transport {
                message, retriable, ..
            }) => {
                assert!(
                    message.contains(problem),
                    "`{message}` does not say `{problem}`"
                );
                assert!(
                    retriable,
                    "a malformed response must be retriable: {message}"
                );
            }
            other => panic!("expected a transport error saying `{problem}`, got {other:?}"),
        }
    }

    /// Encodes `build(v)` at every version kafka-protocol knows, checks that the walk accounts
    /// for exactly its bytes and that `decode_response` gives the message back, then sets each
    /// count and length to its maximum and checks both refuse it. Answers (versions, tampers).
    fn exercise<T>(build: fn(i16) -> T) -> (usize, usize)
    where
        T: Encodable + Decodable + HeaderVersion + Message + Guarded + PartialEq + Debug,
    {
        let layout = T::LAYOUT;
        assert_eq!(
            (layout.min_version, layout.max_version),
            (T::VERSIONS.min, T::VERSIONS.max),
            "the {} layout does not cover the versions kafka-protocol decodes",
            layout.message
        );
        let mut tampered = 0;
        for v in T::VERSIONS.min..=T::VERSIONS.max {
            let name = format!("{} v{v}", layout.message);
            let message = build(v);
            let body = encode(&message, v);
            let mut marks = Vec::new();
            let used = check_marked(layout, v, &body, &mut marks)
                .unwrap_or_else(|e| panic!("{name}: a valid encoding was refused: {e}"));
            assert_eq!(
                used,
                body.len(),
                "{name}: the layout accounts for {used} bytes"
            );
            for mark in marks.iter().filter(|m| m.prefix == Prefix::Count) {
                assert_eq!(
                    read_prefix(&body, mark),
                    2,
                    "{name}: the test message has no two elements in `{}` (byte {})",
                    mark.field,
                    mark.at
                );
            }
            // A known tagged field missing from the layout would be skipped as unknown, and
            // its arrays unguarded: the only unknown ones must be those the test added.
            for mark in marks.iter().filter(|m| m.prefix == Prefix::TagSize) {
                let start = mark.at + mark.width;
                let value = &body[start..start + read_prefix(&body, mark) as usize];
                assert!(
                    mark.field != TAGGED_FIELDS || value == FUTURE,
                    "{name}: the layout does not know the tagged field at byte {}",
                    mark.at
                );
            }
            let header_version = T::header_version(v);
            let header = header(header_version);
            let (correlation, decoded) = decode_response::<T>(frame(&header, &body), v)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(correlation, 77, "{name}");
            assert_eq!(decoded, message, "{name}: decoded differs from encoded");

            for mark in &marks {
                let (bad, declared) = tamper(&body, mark, &marks);
                let problem = expected_problem(mark, declared);
                let refused = check(layout, v, &bad)
                    .expect_err(&format!("{name}: tampered {mark:?} was accepted"))
                    .to_string();
                assert!(
                    refused.starts_with(&format!("malformed {name}: "))
                        && refused.contains(&problem),
                    "{name}: `{refused}` does not say `{problem}`"
                );
                assert_refused(decode_response::<T>(frame(&header, &bad), v), &problem);
                tampered += 1;
            }
            let mut header_marks = Vec::new();
            check_marked(&RESPONSE_HEADER, header_version, &header, &mut header_marks)
                .unwrap_or_else(|e| panic!("{name}: header refused: {e}"));
            for mark in &header_marks {
                let (bad, declared) = tamper(&header, mark, &header_marks);
                let problem = expected_problem(mark, declared);
                assert_refused(decode_response::<T>(frame(&bad, &body), v), &problem);
                tampered += 1;
            }
        }
        let versions = (T::VERSIONS.max - T::VERSIONS.min + 1) as usize;
        (versions, tampered)
    }

    fn api_versions(v: i16) -> ApiVersionsResponse {
        ApiVersionsResponse::default()
            .with_error_code(35)
            .with_api_keys(two(|i| {
                ApiVersion::default()
                    .with_api_key(3 + i as i16)
                    .with_min_version(1)
                    .with_max_version(9 + i as i16)
            }))
            .when(v >= 1, |m| m.with_throttle_time_ms(250))
            .when(v >= 3, |m| {
                m.with_supported_features(two(|i| {
                    SupportedFeatureKey::default()
                        .with_name(s(&format!("feature.{i}")))
                        .with_min_version(1)
                        .with_max_version(2 + i as i16)
                }))
                .with_finalized_features_epoch(7)
                .with_finalized_features(two(|i| {
                    FinalizedFeatureKey::default()
                        .with_name(s(&format!("finalized.{i}")))
                        .with_max_version_level(3)
                        .with_min_version_level(1 + i as i16)
                }))
                .with_zk_migration_ready(true)
                .with_unknown_tagged_field(99, b(b"from a future version"))
            })
    }

    fn metadata(v: i16) -> MetadataResponse {
        MetadataResponse::default()
            .when(v >= 3, |m| m.with_throttle_time_ms(10))
            .with_brokers(two(|i| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(i))
                    .with_host(s(&format!("broker-{i}.example")))
                    .with_port(9092 + i)
                    .when(v >= 1, |b| b.with_rack(Some(s("rack-a"))))
            }))
            .when(v >= 2, |m| m.with_cluster_id(Some(s("cluster-7"))))
            .when(v >= 1, |m| m.with_controller_id(BrokerId(1)))
            .with_topics(two(|i| {
                MetadataResponseTopic::default()
                    .with_error_code(3)
                    .with_name(Some(TopicName(s(&format!("topic-{i}")))))
                    .when(v >= 1, |t| t.with_is_internal(i == 1))
                    .with_partitions(two(|p| {
                        MetadataResponsePartition::default()
                            .with_error_code(9)
                            .with_partition_index(p)
                            .with_leader_id(BrokerId(p + 1))
                            .when(v >= 7, |p| p.with_leader_epoch(4))
                            .with_replica_nodes(two(BrokerId))
                            .with_isr_nodes(two(|n| BrokerId(n + 2)))
                            .when(v >= 5, |p| {
                                p.with_offline_replicas(two(|n| BrokerId(n + 4)))
                            })
                            .when(v >= 9, |p| future(|t, b| p.with_unknown_tagged_field(t, b)))
                    }))
                    .when(v >= 8, |t| t.with_topic_authorized_operations(0x0f))
            }))
            .when((8..=10).contains(&v), |m| {
                m.with_cluster_authorized_operations(0x1f)
            })
            .when(v >= 13, |m| m.with_error_code(41))
            .when(v >= 9, |m| future(|t, b| m.with_unknown_tagged_field(t, b)))
    }

    fn find_coordinator(v: i16) -> FindCoordinatorResponse {
        FindCoordinatorResponse::default()
            .when(v >= 1, |m| m.with_throttle_time_ms(5))
            .when(v <= 3, |m| {
                m.with_error_code(15)
                    .with_node_id(BrokerId(3))
                    .with_host(s("broker-3.example"))
                    .with_port(9093)
            })
            .when((1..=3).contains(&v), |m| {
                m.with_error_message(Some(s("coordinator loading")))
            })
            .when(v >= 4, |m| {
                m.with_coordinators(two(|i| {
                    Coordinator::default()
                        .with_key(s(&format!("group-{i}")))
                        .with_node_id(BrokerId(i))
                        .with_host(s("broker.example"))
                        .with_port(9092 + i)
                        .with_error_code(14)
                        .with_error_message(Some(s("not yet")))
                }))
            })
            .when(v >= 3, |m| future(|t, b| m.with_unknown_tagged_field(t, b)))
    }

    fn join_group(v: i16) -> JoinGroupResponse {
        JoinGroupResponse::default()
            .when(v >= 2, |m| m.with_throttle_time_ms(20))
            .with_error_code(79)
            .with_generation_id(12)
            .when(v >= 7, |m| m.with_protocol_type(Some(s("consumer"))))
            .with_protocol_name(Some(s("range")))
            .with_leader(s("member-0"))
            .when(v >= 9, |m| m.with_skip_assignment(true))
            .with_member_id(s("member-1"))
            .with_members(two(|i| {
                JoinGroupResponseMember::default()
                    .with_member_id(s(&format!("member-{i}")))
                    .when(v >= 5, |m| m.with_group_instance_id(Some(s("instance"))))
                    .with_metadata(b(b"\x00\x03subscription"))
            }))
            .when(v >= 6, |m| future(|t, b| m.with_unknown_tagged_field(t, b)))
    }

    fn sync_group(v: i16) -> SyncGroupResponse {
        SyncGroupResponse::default()
            .when(v >= 1, |m| m.with_throttle_time_ms(30))
            .with_error_code(27)
            .when(v >= 5, |m| {
                m.with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("roundrobin")))
            })
            .with_assignment(b(b"\x00\x03assignment"))
            .when(v >= 4, |m| future(|t, b| m.with_unknown_tagged_field(t, b)))
    }

    fn heartbeat(v: i16) -> HeartbeatResponse {
        HeartbeatResponse::default()
            .when(v >= 1, |m| m.with_throttle_time_ms(40))
            .with_error_code(22)
            .when(v >= 4, |m| future(|t, b| m.with_unknown_tagged_field(t, b)))
    }

    fn leave_group(v: i16) -> LeaveGroupResponse {
        LeaveGroupResponse::default()
            .when(v >= 1, |m| m.with_throttle_time_ms(50))
            .with_error_code(25)
            .when(v >= 3, |m| {
                m.with_members(two(|i| {
                    MemberResponse::default()
                        .with_member_id(s(&format!("member-{i}")))
                        .with_group_instance_id(Some(s("instance")))
                        .with_error_code(16)
                }))
            })
            .when(v >= 4, |m| future(|t, b| m.with_unknown_tagged_field(t, b)))
    }

    fn offset_fetch(v: i16) -> OffsetFetchResponse {
        OffsetFetchResponse::default()
            .when(v >= 3, |m| m.with_throttle_time_ms(60))
            .when(v <= 7, |m| {
                m.with_topics(two(|i| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(s(&format!("topic-{i}"))))
                        .with_partitions(two(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(1000 + i64::from(p))
                                .when(v >= 5, |p| p.with_committed_leader_epoch(3))
                                .with_metadata(Some(s("committed by test")))
                                .with_error_code(12)
                        }))
                }))
            })
            .when((2..=7).contains(&v), |m| m.with_error_code(14))
            .when(v >= 8, |m| {
                m.with_groups(two(|g| {
                    OffsetFetchResponseGroup::default()
                        .with_group_id(GroupId(s(&format!("group-{g}"))))
                        .with_topics(two(|i| {
                            OffsetFetchResponseTopics::default()
                                .when(v <= 9, |t| t.with_name(TopicName(s(&format!("t-{i}")))))
                                .with_partitions(two(|p| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(2000)
                                        .with_committed_leader_epoch(5)
                                        .with_metadata(Some(s("meta")))
                                        .with_error_code(3)
                                }))
                        }))
                        .with_error_code(16)
                }))
            })
            .when(v >= 6, |m| future(|t, b| m.with_unknown_tagged_field(t, b)))
    }

    fn offset_commit(v: i16) -> OffsetCommitResponse {
        OffsetCommitResponse::default()
            .when(v >= 3, |m| m.with_throttle_time_ms(70))
            .with_topics(two(|i| {
                OffsetCommitResponseTopic::default()
                    .when(v <= 9, |t| t.with_name(TopicName(s(&format!("topic-{i}")))))
                    .with_partitions(two(|p| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p)
                            .with_error_code(22)
                    }))
            }))
            .when(v >= 8, |m| future(|t, b| m.with_unknown_tagged_field(t, b)))
    }

    fn list_offsets(v: i16) -> ListOffsetsResponse {
        ListOffsetsResponse::default()
            .when(v >= 2, |m| m.with_throttle_time_ms(80))
            .with_topics(two(|i| {
                ListOffsetsTopicResponse::default()
                    .with_name(TopicName(s(&format!("topic-{i}"))))
                    .with_partitions(two(|p| {
                        ListOffsetsPartitionResponse::default()
                            .with_partition_index(p)
                            .with_error_code(6)
                            .with_timestamp(1_700_000_000_000)
                            .with_offset(42)
                            .when(v >= 4, |p| p.with_leader_epoch(8))
                    }))
            }))
            .when(v >= 6, |m| future(|t, b| m.with_unknown_tagged_field(t, b)))
    }

    fn create_topics(v: i16) -> CreateTopicsResponse {
        CreateTopicsResponse::default()
            .with_throttle_time_ms(90)
            .with_topics(two(|i| {
                CreatableTopicResult::default()
                    .with_name(TopicName(s(&format!("topic-{i}"))))
                    .with_error_code(36)
                    .with_error_message(Some(s("already exists")))
                    .when(v >= 5, |t| {
                        t.with_topic_config_error_code(29)
                            .with_num_partitions(6)
                            .with_replication_factor(3)
                            .with_configs(Some(two(|c| {
                                CreatableTopicConfigs::default()
                                    .with_name(s(&format!("config.{c}")))
                                    .with_value(Some(s("value")))
                                    .with_read_only(true)
                                    .with_config_source(5)
                                    .with_is_sensitive(c == 1)
                            })))
                    })
            }))
            .when(v >= 5, |m| future(|t, b| m.with_unknown_tagged_field(t, b)))
    }

    fn describe_groups(v: i16) -> DescribeGroupsResponse {
        DescribeGroupsResponse::default()
            .when(v >= 1, |m| m.with_throttle_time_ms(100))
            .with_groups(two(|g| {
                DescribedGroup::default()
                    .with_error_code(15)
                    .when(v >= 6, |d| d.with_error_message(Some(s("dead"))))
                    .with_group_id(GroupId(s(&format!("group-{g}"))))
                    .with_group_state(s("Stable"))
                    .with_protocol_type(s("consumer"))
                    .with_protocol_data(s("range"))
                    .with_members(two(|i| {
                        DescribedGroupMember::default()
                            .with_member_id(s(&format!("member-{i}")))
                            .when(v >= 4, |m| m.with_group_instance_id(Some(s("instance"))))
                            .with_client_id(s("client"))
                            .with_client_host(s("/127.0.0.1"))
                            .with_member_metadata(b(b"metadata"))
                            .with_member_assignment(b(b"assignment"))
                    }))
                    .when(v >= 3, |d| d.with_authorized_operations(0x3f))
            }))
            .when(v >= 5, |m| future(|t, b| m.with_unknown_tagged_field(t, b)))
    }

    fn fetch(v: i16) -> FetchResponse {
        FetchResponse::default()
            .with_throttle_time_ms(110)
            .when(v >= 7, |m| m.with_error_code(70).with_session_id(1234))
            .with_responses(two(|i| {
                FetchableTopicResponse::default()
                    .when(v <= 12, |t| {
                        t.with_topic(TopicName(s(&format!("topic-{i}"))))
                    })
                    .with_partitions(two(|p| {
                        PartitionData::default()
                            .with_partition_index(p)
                            .with_error_code(1)
                            .with_high_watermark(500)
                            .with_last_stable_offset(490)
                            .when(v >= 5, |d| d.with_log_start_offset(7))
                            .with_aborted_transactions(Some(two(|a| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(9 + i64::from(a)))
                                    .with_first_offset(300)
                            })))
                            .when(v >= 11, |d| d.with_preferred_read_replica(BrokerId(2)))
                            .with_records(Some(b(b"record batches are not walked here")))
                            .when(v >= 12, |d| {
                                d.with_diverging_epoch(
                                    EpochEndOffset::default().with_epoch(5).with_end_offset(100),
                                )
                                .with_current_leader(
                                    fetch_response::LeaderIdAndEpoch::default()
                                        .with_leader_id(BrokerId(1))
                                        .with_leader_epoch(6),
                                )
                                .with_snapshot_id(
                                    SnapshotId::default().with_end_offset(90).with_epoch(4),
                                )
                            })
                    }))
            }))
            .when(v >= 16, |m| {
                m.with_node_endpoints(two(|n| {
                    fetch_response::NodeEndpoint::default()
                        .with_node_id(BrokerId(n))
                        .with_host(s("broker.example"))
                        .with_port(9092)
                        .with_rack(Some(s("rack-b")))
                }))
            })
            .when(v >= 12, |m| {
                future(|t, b| m.with_unknown_tagged_field(t, b))
            })
    }

    fn produce(v: i16) -> ProduceResponse {
        ProduceResponse::default()
            .with_responses(two(|i| {
                TopicProduceResponse::default()
                    .when(v <= 12, |t| {
                        t.with_name(TopicName(s(&format!("topic-{i}"))))
                    })
                    .with_partition_responses(two(|p| {
                        PartitionProduceResponse::default()
                            .with_index(p)
                            .with_error_code(6)
                            .with_base_offset(1000)
                            .with_log_append_time_ms(1_700_000_000_000)
                            .when(v >= 5, |r| r.with_log_start_offset(10))
                            .when(v >= 8, |r| {
                                r.with_record_errors(two(|e| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(e)
                                        .with_batch_index_error_message(Some(s("bad record")))
                                }))
                                .with_error_message(Some(s("invalid record")))
                            })
                            .when(v >= 10, |r| {
                                r.with_current_leader(
                                    produce_response::LeaderIdAndEpoch::default()
                                        .with_leader_id(BrokerId(2))
                                        .with_leader_epoch(3),
                                )
                            })
                    }))
            }))
            .with_throttle_time_ms(120)
            .when(v >= 10, |m| {
                m.with_node_endpoints(two(|n| {
                    produce_response::NodeEndpoint::default()
                        .with_node_id(BrokerId(n))
                        .with_host(s("broker.example"))
                        .with_port(9092)
                        .with_rack(Some(s("rack-c")))
                }))
            })
            .when(v >= 9, |m| future(|t, b| m.with_unknown_tagged_field(t, b)))
    }

    fn init_producer_id(v: i16) -> InitProducerIdResponse {
        InitProducerIdResponse::default()
            .with_throttle_time_ms(130)
            .with_error_code(47)
            .with_producer_id(ProducerId(42))
            .with_producer_epoch(3)
            .when(v >= 6, |m| {
                m.with_ongoing_txn_producer_id(ProducerId(41))
                    .with_ongoing_txn_producer_epoch(2)
            })
            .when(v >= 2, |m| future(|t, b| m.with_unknown_tagged_field(t, b)))
    }

    fn sasl_handshake(_v: i16) -> SaslHandshakeResponse {
        SaslHandshakeResponse::default()
            .with_error_code(33)
            .with_mechanisms(two(|i| s(["PLAIN", "SCRAM-SHA-512"][i as usize])))
    }

    fn sasl_authenticate(v: i16) -> SaslAuthenticateResponse {
        SaslAuthenticateResponse::default()
            .with_error_code(58)
            .with_error_message(Some(s("authentication failed")))
            .with_auth_bytes(b(b"server-final-message"))
            .when(v >= 1, |m| m.with_session_lifetime_ms(3_600_000))
            .when(v >= 2, |m| future(|t, b| m.with_unknown_tagged_field(t, b)))
    }

    /// Every response type at every version: the layouts match kafka-protocol's encoder, and
    /// every count and length set to its maximum is refused by the walk and by
    /// `decode_response` (a miss would abort this test process).
    #[test]
    fn every_response_at_every_version_round_trips_and_refuses_hostile_counts() {
        let runs = [
            exercise(api_versions),
            exercise(metadata),
            exercise(find_coordinator),
            exercise(join_group),
            exercise(sync_group),
            exercise(heartbeat),
            exercise(leave_group),
            exercise(offset_fetch),
            exercise(offset_commit),
            exercise(list_offsets),
            exercise(create_topics),
            exercise(describe_groups),
            exercise(fetch),
            exercise(produce),
            exercise(init_producer_id),
            exercise(sasl_handshake),
            exercise(sasl_authenticate),
        ];
        let versions: usize = runs.iter().map(|r| r.0).sum();
        let tampered: usize = runs.iter().map(|r| r.1).sum();
        // 5 + 14 + 7 + 10 + 6 + 5 + 6 + 10 + 9 + 10 + 6 + 7 + 15 + 11 + 7 + 2 + 3
        assert_eq!(versions, 133, "response type × version combinations");
        // Every count, length, tagged-field count and size of those messages and their headers.
        assert_eq!(tampered, 2189, "prefixes tampered with");
    }

    #[test]
    fn the_response_header_is_walked_at_both_versions() {
        for v in 0..=1 {
            let bytes = header(v);
            assert_eq!(check(&RESPONSE_HEADER, v, &bytes), Ok(bytes.len()), "v{v}");
            let decoded = ResponseHeader::decode(&mut bytes.clone(), v).unwrap();
            assert_eq!(decoded.correlation_id, 77);
        }
        let layout = <ResponseHeader as Guarded>::LAYOUT;
        assert_eq!(
            (layout.min_version, layout.max_version),
            (ResponseHeader::VERSIONS.min, ResponseHeader::VERSIONS.max)
        );
        assert_eq!(
            check(&RESPONSE_HEADER, 1, &[0, 0, 0, 7])
                .unwrap_err()
                .to_string(),
            "malformed ResponseHeader v1: section `_tagged_fields` has a varint cut off at byte 4"
        );
    }

    /// The case that aborted the process: a JoinGroup v5 response whose `members` count is
    /// `0x7fffffff`, with 4 bytes behind it.
    #[test]
    fn a_join_group_members_count_of_i32_max_is_refused() {
        let mut body = BytesMut::new();
        body.put_i32(0); // throttle_time_ms
        body.put_i16(0); // error_code
        body.put_i32(1); // generation_id
        for text in ["range", "member-0", "member-0"] {
            body.put_i16(text.len() as i16);
            body.put_slice(text.as_bytes());
        }
        let at = body.len();
        body.put_i32(0x7fff_ffff);
        body.put_slice(&[0; 4]);
        let problem = format!(
            "malformed JoinGroupResponse v5: array `members` declares 2147483647 elements at \
             byte {at} but 4 bytes remain"
        );
        assert_eq!(
            check(&JOIN_GROUP, 5, &body).unwrap_err().to_string(),
            problem
        );
        let frame = frame(&header(0), &body);
        assert_refused(decode_response::<JoinGroupResponse>(frame, 5), &problem);
    }

    #[test]
    fn nested_faults_name_their_path() {
        let mut body = encode(&metadata(1), 1).to_vec();
        let mut marks = Vec::new();
        check_marked(&METADATA, 1, &body, &mut marks).unwrap();
        let isr = marks
            .iter()
            .filter(|m| m.field == "isr_nodes")
            .nth(2)
            .expect("four isr_nodes arrays");
        body[isr.at..isr.at + 4].copy_from_slice(&1000i32.to_be_bytes());
        let refused = check(&METADATA, 1, &body).unwrap_err().to_string();
        assert!(
            refused.contains("array `topics[1].partitions[0].isr_nodes` declares 1000 elements"),
            "{refused}"
        );
    }

    #[test]
    fn nulls_are_accepted_and_negative_lengths_refused() {
        for v in [4, 12] {
            let mut message = fetch(v);
            message.responses[0].partitions[0].records = None;
            message.responses[0].partitions[1].aborted_transactions = None;
            let body = encode(&message, v);
            assert_eq!(check(&FETCH, v, &body), Ok(body.len()), "v{v}");
            let frame = frame(&header(FetchResponse::header_version(v)), &body);
            assert_eq!(
                decode_response::<FetchResponse>(frame, v).unwrap().1,
                message
            );
        }
        for v in [2, 9] {
            let mut message = metadata(v);
            message.cluster_id = None;
            let body = encode(&message, v);
            assert_eq!(check(&METADATA, v, &body), Ok(body.len()), "v{v}");
        }
        let mut body = BytesMut::new();
        body.put_i16(0);
        body.put_i32(-2);
        assert_eq!(
            check(&SASL_HANDSHAKE, 0, &body).unwrap_err().to_string(),
            "malformed SaslHandshakeResponse v0: array `mechanisms` declares a negative length \
             -2 at byte 2"
        );
    }

    #[test]
    fn a_known_tagged_field_must_fill_its_size() {
        let body = encode(&fetch(16), 16).to_vec();
        let mut marks = Vec::new();
        check_marked(&FETCH, 16, &body, &mut marks).unwrap();
        let size = marks
            .iter()
            .find(|m| m.prefix == Prefix::TagSize && m.field == "snapshot_id")
            .expect("a snapshot_id");
        let declared = read_prefix(&body, size);
        // One byte more than the value takes: its trailing byte belongs to what follows.
        let mut bad = body.clone();
        bad[size.at] += 1;
        let refused = check(&FETCH, 16, &bad).unwrap_err().to_string();
        assert!(
            refused.contains(&format!(
                "tagged field `responses[0].partitions[0].snapshot_id` (tag 2) declares {} \
                 bytes at byte {} but its value takes {declared}",
                declared + 1,
                size.at
            )),
            "{refused}"
        );
    }

    #[test]
    fn versions_without_a_layout_are_refused() {
        assert_eq!(
            check(&JOIN_GROUP, 10, &[]).unwrap_err().to_string(),
            "malformed JoinGroupResponse v10: no layout for this version (v0 to v9 are known)"
        );
    }

    #[test]
    fn truncated_fields_and_overlong_varints_are_refused() {
        assert_eq!(
            check(&HEARTBEAT, 4, &[0, 0, 0]).unwrap_err().to_string(),
            "malformed HeartbeatResponse v4: field `throttle_time_ms` needs 4 bytes at byte 0 \
             but 3 bytes remain"
        );
        let body = [0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(
            check(&HEARTBEAT, 4, &body[..]).unwrap_err().to_string(),
            "malformed HeartbeatResponse v4: section `_tagged_fields` has a varint longer than \
             32 bits at byte 6"
        );
    }

    /// The bound `count <= remaining` is sound only if every element takes a byte or more.
    #[test]
    fn every_array_element_takes_at_least_one_byte() {
        fn min_size(ty: &Ty, version: i16, flexible: bool) -> usize {
            match *ty {
                Ty::Fixed(width) => width,
                Ty::Str | Ty::Bytes | Ty::Array(_) if flexible => 1,
                Ty::Str => 2,
                Ty::Bytes | Ty::Array(_) => 4,
                Ty::Struct(s) => {
                    let fields = s
                        .fields
                        .iter()
                        .filter(|f| (f.min..=f.max).contains(&version));
                    fields
                        .map(|f| min_size(&f.ty, version, flexible))
                        .sum::<usize>()
                        + usize::from(flexible)
                }
            }
        }
        fn elements(ty: &Ty, version: i16, flexible: bool, context: &str) {
            match *ty {
                Ty::Array(elem) => {
                    assert!(min_size(elem, version, flexible) >= 1, "{context}");
                    elements(elem, version, flexible, context);
                }
                Ty::Struct(s) => {
                    for f in s
                        .fields
                        .iter()
                        .filter(|f| (f.min..=f.max).contains(&version))
                    {
                        elements(&f.ty, version, flexible, &format!("{context}.{}", f.name));
                    }
                    for t in s.tagged.iter().filter(|t| flexible && version >= t.min) {
                        elements(&t.ty, version, flexible, &format!("{context}.{}", t.name));
                    }
                }
                _ => {}
            }
        }
        for layout in [
            &RESPONSE_HEADER,
            &API_VERSIONS,
            &METADATA,
            &FIND_COORDINATOR,
            &JOIN_GROUP,
            &SYNC_GROUP,
            &HEARTBEAT,
            &LEAVE_GROUP,
            &OFFSET_FETCH,
            &OFFSET_COMMIT,
            &LIST_OFFSETS,
            &CREATE_TOPICS,
            &DESCRIBE_GROUPS,
            &FETCH,
            &PRODUCE,
            &INIT_PRODUCER_ID,
            &SASL_HANDSHAKE,
            &SASL_AUTHENTICATE,
        ] {
            for v in layout.min_version..=layout.max_version {
                let root = Ty::Struct(&layout.root);
                elements(
                    &root,
                    v,
                    v >= layout.flexible,
                    &format!("{} v{v}", layout.message),
                );
            }
        }
    }
}
