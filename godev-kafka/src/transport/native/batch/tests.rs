//! Tests of the record batch codec: round trips through every codec, golden bytes built
//! from the spec, the fetch semantics (`from`, control batches, `read_committed`, a cut
//! trailing batch) and hostile input.
//!
//! The batches that are not made by [`encode`] come from a second, deliberately simple
//! writer of the format below (`raw_batch`, `raw_records`), written from the spec.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::compression::XERIAL_MAGIC;
use super::*;

const ALL: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

// ---------------------------------------------------------------------------------------------
// An independent writer of the format
// ---------------------------------------------------------------------------------------------

/// Appends `v` as a zigzag varint (the same bytes for Kafka's varint and varlong).
fn zz(out: &mut Vec<u8>, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8 & 0x7f) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// Appends a nullable byte string with its length.
fn nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => zz(out, -1),
        Some(b) => {
            zz(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// A record for the independent writer.
#[derive(Clone)]
struct Rec {
    ts_delta: i64,
    offset_delta: i32,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn rec(offset_delta: i32, key: Option<&[u8]>, value: Option<&[u8]>) -> Rec {
    Rec {
        ts_delta: i64::from(offset_delta),
        offset_delta,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: Vec::new(),
    }
}

/// The records section of `recs`, uncompressed.
fn raw_records(recs: &[Rec]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in recs {
        let mut body = vec![0u8]; // attributes
        zz(&mut body, r.ts_delta);
        zz(&mut body, i64::from(r.offset_delta));
        nullable(&mut body, r.key.as_deref());
        nullable(&mut body, r.value.as_deref());
        zz(&mut body, r.headers.len() as i64);
        for (k, v) in &r.headers {
            nullable(&mut body, Some(k));
            nullable(&mut body, v.as_deref());
        }
        zz(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    out
}

/// A batch header's fields for the independent writer.
#[derive(Clone, Copy)]
struct Head {
    base_offset: i64,
    attributes: i16,
    last_offset_delta: i32,
    base_ts: i64,
    max_ts: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    count: i32,
}

impl Head {
    fn new(base_offset: i64, count: i32) -> Self {
        Self {
            base_offset,
            attributes: 0,
            last_offset_delta: count - 1,
            base_ts: 1_000,
            max_ts: 1_000 + i64::from(count - 1),
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            count,
        }
    }
}

/// A batch of `head` and the records section `section` (already compressed if it should
/// be), with the right length and CRC.
fn raw_batch(head: Head, section: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&head.base_offset.to_be_bytes());
    b.extend_from_slice(&((49 + section.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // CRC
    b.extend_from_slice(&head.attributes.to_be_bytes());
    b.extend_from_slice(&head.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&head.base_ts.to_be_bytes());
    b.extend_from_slice(&head.max_ts.to_be_bytes());
    b.extend_from_slice(&head.producer_id.to_be_bytes());
    b.extend_from_slice(&head.producer_epoch.to_be_bytes());
    b.extend_from_slice(&head.base_sequence.to_be_bytes());
    b.extend_from_slice(&head.count.to_be_bytes());
    b.extend_from_slice(section);
    fix_crc(&mut b);
    b
}

/// Recomputes the CRC of the batch at the start of `b`, as far as its bytes go.
fn fix_crc(b: &mut [u8]) {
    if b.len() < 21 {
        return;
    }
    let length = i32::from_be_bytes([b[8], b[9], b[10], b[11]]);
    let end = usize::try_from(length)
        .map_or(b.len(), |l| (l + 12).min(b.len()))
        .max(21);
    let crc = crc32c::crc32c(&b[21..end]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// A data batch of `n` records at `base_offset`, values `v<offset>`, keys `k<offset>`.
fn data_batch(base_offset: i64, producer_id: i64, transactional: bool, n: i32) -> Vec<u8> {
    let recs: Vec<Rec> = (0..n)
        .map(|d| {
            let o = base_offset + i64::from(d);
            rec(
                d,
                Some(format!("k{o}").as_bytes()),
                Some(format!("v{o}").as_bytes()),
            )
        })
        .collect();
    let mut head = Head::new(base_offset, n);
    head.producer_id = producer_id;
    head.producer_epoch = 0;
    head.base_sequence = 0;
    if transactional {
        head.attributes |= 0x10;
    }
    raw_batch(head, &raw_records(&recs))
}

/// A transaction marker batch (control, transactional) of type `kind` (0 abort, 1 commit).
fn marker(base_offset: i64, producer_id: i64, kind: i16) -> Vec<u8> {
    let mut key = 0i16.to_be_bytes().to_vec(); // version
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = 0i16.to_be_bytes().to_vec(); // version
    value.extend_from_slice(&5i32.to_be_bytes()); // coordinator epoch
    let mut head = Head::new(base_offset, 1);
    head.attributes = 0x30;
    head.producer_id = producer_id;
    head.producer_epoch = 0;
    raw_batch(head, &raw_records(&[rec(0, Some(&key), Some(&value))]))
}

fn dec(data: &[u8]) -> Result<Decoded, BatchError> {
    decode(&Bytes::copy_from_slice(data), 0, None)
}

fn offsets(d: &Decoded) -> Vec<i64> {
    d.records.iter().map(|r| r.offset).collect()
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

/// Owned inputs for `n` varied records: null and empty keys, empty values, headers with
/// empty values, timestamps before and after the first.
struct Inputs {
    keys: Vec<Option<Vec<u8>>>,
    values: Vec<Vec<u8>>,
    headers: Vec<Vec<(String, Vec<u8>)>>,
    timestamps: Vec<i64>,
}

impl Inputs {
    fn new(n: usize) -> Self {
        let keys = (0..n)
            .map(|i| match i % 11 {
                0 => None,
                5 => Some(Vec::new()),
                _ => Some(format!("key-{i}").into_bytes()),
            })
            .collect();
        let values = (0..n)
            .map(|i| format!("value {i};").repeat(i % 7).into_bytes())
            .collect();
        let headers = (0..n)
            .map(|i| {
                (0..i % 4)
                    .map(|j| {
                        (
                            format!("h{j}"),
                            if j == 1 {
                                Vec::new()
                            } else {
                                vec![j as u8; j * 3 + i % 5]
                            },
                        )
                    })
                    .collect()
            })
            .collect();
        let timestamps = (0..n)
            .map(|i| 1_700_000_000_000 + (i as i64 * 37) % 1000 - 500)
            .collect();
        Self {
            keys,
            values,
            headers,
            timestamps,
        }
    }

    fn records(&self) -> Vec<OutRecord<'_>> {
        (0..self.values.len())
            .map(|i| OutRecord {
                key: self.keys[i].as_deref(),
                value: &self.values[i],
                headers: &self.headers[i],
                timestamp: self.timestamps[i],
            })
            .collect()
    }

    fn expected(&self, offset: i64) -> InRecord {
        let i = offset as usize;
        InRecord {
            offset,
            timestamp: self.timestamps[i],
            key: self.keys[i].clone().map(Bytes::from),
            value: Bytes::from(self.values[i].clone()),
            headers: self.headers[i]
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
        }
    }
}

/// Every codec: 1000 records with keys, null and empty keys, headers, empty values come back
/// as they went in, with offsets 0..1000, and the header fields are as the spec says.
#[test]
fn round_trip_every_codec() {
    let inputs = Inputs::new(1000);
    let records = inputs.records();
    for codec in ALL {
        let mut out = BytesMut::new();
        encode(&mut out, &records, codec, None).unwrap();
        let b = &out[..];
        assert_eq!(&b[0..8], &[0; 8], "{codec:?}: base offset");
        assert_eq!(
            be_i32(b, 8) as usize,
            b.len() - 12,
            "{codec:?}: batch length"
        );
        assert_eq!(be_i32(b, 12), -1, "{codec:?}: partition leader epoch");
        assert_eq!(b[16], 2, "{codec:?}: magic");
        assert_eq!(
            u32::from_be_bytes(b[17..21].try_into().unwrap()),
            crc32c::crc32c(&b[21..])
        );
        assert_eq!(
            i16::from_be_bytes([b[21], b[22]]),
            codec.id(),
            "{codec:?}: attributes"
        );
        assert_eq!(be_i32(b, 23), 999, "{codec:?}: last offset delta");
        assert_eq!(
            i64::from_be_bytes(b[27..35].try_into().unwrap()),
            inputs.timestamps[0]
        );
        let max = *inputs.timestamps.iter().max().unwrap();
        assert_eq!(i64::from_be_bytes(b[35..43].try_into().unwrap()), max);
        assert_eq!(
            &b[43..57],
            &[0xff; 14],
            "{codec:?}: no producer id, epoch, sequence"
        );
        assert_eq!(be_i32(b, 57), 1000, "{codec:?}: record count");

        let decoded = decode(&out.freeze(), 0, None).unwrap();
        assert_eq!(decoded.next_offset, Some(1000), "{codec:?}");
        assert_eq!(decoded.records.len(), 1000, "{codec:?}");
        for r in &decoded.records {
            assert_eq!(*r, inputs.expected(r.offset), "{codec:?}");
        }
    }
}

/// Large records (incompressible and repetitive, beyond one xerial block of 32 KiB and one
/// LZ4 block of 64 KiB) survive every codec.
#[test]
fn round_trip_large_records() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let noise: Vec<u8> = (0..150_000).map(|_| rng.next() as u8).collect();
    let repetitive = b"kafka ".repeat(60_000);
    let headers = vec![("trace".to_owned(), noise[..1000].to_vec())];
    let records = [
        OutRecord {
            key: Some(b"noise"),
            value: &noise,
            headers: &headers,
            timestamp: 5,
        },
        OutRecord {
            key: None,
            value: &repetitive,
            headers: &[],
            timestamp: 6,
        },
        OutRecord {
            key: Some(&noise[..70_000]),
            value: b"",
            headers: &[],
            timestamp: 4,
        },
    ];
    for codec in ALL {
        let mut out = BytesMut::new();
        encode(&mut out, &records, codec, None).unwrap();
        if codec != Compression::None {
            assert!(
                out.len() < noise.len() + 70_000 + 60_000,
                "{codec:?} compressed nothing"
            );
        }
        let decoded = decode(&out.freeze(), 0, None).unwrap();
        assert_eq!(decoded.records.len(), 3);
        for (got, want) in decoded.records.iter().zip(&records) {
            assert_eq!(got.key.as_deref(), want.key, "{codec:?}");
            assert_eq!(&got.value[..], want.value, "{codec:?}");
            assert_eq!(got.timestamp, want.timestamp);
        }
        assert_eq!(
            decoded.records[0].headers,
            vec![("trace".to_owned(), Some(noise[..1000].to_vec()))]
        );
    }
}

/// A producer stamp lands in the producer id, epoch and base sequence fields.
#[test]
fn stamp_is_written() {
    let stamp = ProducerStamp {
        producer_id: 0x0102_0304_0506_0708,
        producer_epoch: 9,
        base_sequence: 77,
    };
    let records = [OutRecord {
        key: None,
        value: b"x",
        headers: &[],
        timestamp: 1,
    }];
    let mut out = BytesMut::new();
    encode(&mut out, &records, Compression::None, Some(stamp)).unwrap();
    assert_eq!(&out[43..51], &stamp.producer_id.to_be_bytes());
    assert_eq!(&out[51..53], &9i16.to_be_bytes());
    assert_eq!(&out[53..57], &77i32.to_be_bytes());
    assert_eq!(decode(&out.freeze(), 0, None).unwrap().records.len(), 1);
}

/// `encode` appends after what `out` holds; a failure (no records) leaves `out` as it was.
#[test]
fn encode_appends_and_fails_cleanly() {
    let mut out = BytesMut::from(&b"prefix"[..]);
    assert_eq!(
        encode(&mut out, &[], Compression::Zstd, None),
        Err(BatchError::EmptyBatch)
    );
    assert_eq!(&out[..], b"prefix");
    let records = [OutRecord {
        key: None,
        value: b"x",
        headers: &[],
        timestamp: 1,
    }];
    encode(&mut out, &records, Compression::Lz4, None).unwrap();
    assert_eq!(&out[..6], b"prefix");
    let decoded = decode(&out.freeze().slice(6..), 0, None).unwrap();
    assert_eq!(&decoded.records[0].value[..], b"x");
}

/// Two batches in one fetch: both decode, in order. The base offset is outside the CRC, so
/// rewriting it (as the broker does) keeps the batch valid.
#[test]
fn several_batches() {
    let inputs = Inputs::new(20);
    let records = inputs.records();
    let mut out = BytesMut::new();
    encode(&mut out, &records[..10], Compression::Snappy, None).unwrap();
    let second = out.len();
    encode(&mut out, &records[10..], Compression::Gzip, None).unwrap();
    out[second..second + 8].copy_from_slice(&1000i64.to_be_bytes());
    let decoded = decode(&out.freeze(), 0, None).unwrap();
    let want: Vec<i64> = (0..10).chain(1000..1010).collect();
    assert_eq!(offsets(&decoded), want);
    assert_eq!(decoded.next_offset, Some(1010));
    assert_eq!(
        decoded.records[10].value,
        Bytes::from(inputs.values[10].clone())
    );
}

/// `record_size_estimate` is never below what a record really takes, alone or in a batch.
#[test]
fn size_estimate_is_an_upper_bound() {
    let inputs = Inputs::new(300);
    let records = inputs.records();
    let mut sum = 0;
    for r in &records {
        let estimate = record_size_estimate(r.key, r.value, r.headers);
        sum += estimate;
        let mut out = BytesMut::new();
        encode(&mut out, std::slice::from_ref(r), Compression::None, None).unwrap();
        assert!(
            out.len() - 61 <= estimate,
            "{} > {estimate}",
            out.len() - 61
        );
    }
    let mut out = BytesMut::new();
    encode(&mut out, &records, Compression::None, None).unwrap();
    assert!(out.len() - 61 <= sum);
    // and not wildly above: 21 bytes of slack per record at most
    assert!(sum - (out.len() - 61) <= 21 * records.len());
}

// ---------------------------------------------------------------------------------------------
// Golden bytes
// ---------------------------------------------------------------------------------------------

/// The header of a golden batch: base offset 0, 2 records, base timestamp 1000, max 1005.
fn golden_header(records_len: usize) -> Vec<u8> {
    let mut b = vec![0, 0, 0, 0, 0, 0, 0, 0]; // base offset 0
    b.extend_from_slice(&[0, 0, 0, (49 + records_len) as u8]); // batch length
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // partition leader epoch -1
    b.push(2); // magic
    b.extend_from_slice(&[0, 0, 0, 0]); // CRC, below
    b.extend_from_slice(&[0, 0]); // attributes: no compression, CreateTime
    b.extend_from_slice(&[0, 0, 0, 1]); // last offset delta 1
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x03, 0xe8]); // base timestamp 1000
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x03, 0xed]); // max timestamp 1005
    b.extend_from_slice(&[0xff; 8]); // producer id -1
    b.extend_from_slice(&[0xff; 2]); // producer epoch -1
    b.extend_from_slice(&[0xff; 4]); // base sequence -1
    b.extend_from_slice(&[0, 0, 0, 2]); // 2 records
    b
}

fn with_crc(mut b: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Two records written byte by byte from the spec decode as expected, and `encode` writes
/// exactly these bytes for the same records.
#[test]
fn golden_two_records() {
    #[rustfmt::skip]
    let records: [u8; 21] = [
        // record 0: 13 bytes (zigzag 26), key "k", value "v1", header h = "x"
        0x1a, 0x00, 0x00, 0x00, 0x02, b'k', 0x04, b'v', b'1', 0x02, 0x02, b'h', 0x02, b'x',
        // record 1: 6 bytes (zigzag 12), timestamp delta 5 (10), offset delta 1 (2),
        // null key (-1: 1), empty value (0), no headers
        0x0c, 0x00, 0x0a, 0x02, 0x01, 0x00, 0x00,
    ];
    let mut golden = golden_header(records.len());
    golden.extend_from_slice(&records);
    let golden = with_crc(golden);

    let decoded = dec(&golden).unwrap();
    assert_eq!(decoded.next_offset, Some(2));
    assert_eq!(
        decoded.records,
        vec![
            InRecord {
                offset: 0,
                timestamp: 1000,
                key: Some(Bytes::from_static(b"k")),
                value: Bytes::from_static(b"v1"),
                headers: vec![("h".to_owned(), Some(b"x".to_vec()))],
            },
            InRecord {
                offset: 1,
                timestamp: 1005,
                key: None,
                value: Bytes::new(),
                headers: vec![]
            },
        ]
    );

    let headers = vec![("h".to_owned(), b"x".to_vec())];
    let out_records = [
        OutRecord {
            key: Some(b"k"),
            value: b"v1",
            headers: &headers,
            timestamp: 1000,
        },
        OutRecord {
            key: None,
            value: b"",
            headers: &[],
            timestamp: 1005,
        },
    ];
    let mut out = BytesMut::new();
    encode(&mut out, &out_records, Compression::None, None).unwrap();
    assert_eq!(&out[..], &golden[..]);
}

/// A null value decodes as empty and a null header value as `None`.
#[test]
fn golden_null_value_and_null_header_value() {
    #[rustfmt::skip]
    let records: [u8; 24] = [
        // record 0 as in `golden_two_records`
        0x1a, 0x00, 0x00, 0x00, 0x02, b'k', 0x04, b'v', b'1', 0x02, 0x02, b'h', 0x02, b'x',
        // record 1: 9 bytes (zigzag 18), null key, null value, 1 header "n" with a null value
        0x12, 0x00, 0x0a, 0x02, 0x01, 0x01, 0x02, 0x02, b'n', 0x01,
    ];
    let mut golden = golden_header(records.len());
    golden.extend_from_slice(&records);
    let decoded = dec(&with_crc(golden)).unwrap();
    let second = &decoded.records[1];
    assert_eq!(second.key, None);
    assert_eq!(second.value, Bytes::new());
    assert_eq!(second.headers, vec![("n".to_owned(), None)]);
}

/// Keys and values of an uncompressed batch are slices of the fetched bytes, not copies.
#[test]
fn uncompressed_decoding_is_zero_copy() {
    let data = Bytes::from(data_batch(0, -1, false, 5));
    let decoded = decode(&data, 0, None).unwrap();
    let span = data.as_ptr() as usize..data.as_ptr() as usize + data.len();
    for r in &decoded.records {
        assert!(span.contains(&(r.value.as_ptr() as usize)));
        assert!(span.contains(&(r.key.as_ref().unwrap().as_ptr() as usize)));
    }
}

/// With `LogAppendTime` (attribute bit 3) every record has the batch's max timestamp.
#[test]
fn log_append_time_uses_max_timestamp() {
    let mut head = Head::new(0, 3);
    head.attributes = 0x08;
    head.max_ts = 123_456;
    let recs: Vec<Rec> = (0..3).map(|d| rec(d, None, Some(b"v"))).collect();
    let decoded = dec(&raw_batch(head, &raw_records(&recs))).unwrap();
    assert!(decoded.records.iter().all(|r| r.timestamp == 123_456));
}

// ---------------------------------------------------------------------------------------------
// Fetch semantics
// ---------------------------------------------------------------------------------------------

/// `from` drops the records of a batch before it (the broker returns whole batches), and a
/// batch entirely before it yields nothing but still moves `next_offset`.
#[test]
fn from_skips_earlier_records() {
    let data = Bytes::from(
        [
            data_batch(100, -1, false, 10),
            data_batch(110, -1, false, 5),
        ]
        .concat(),
    );
    let decoded = decode(&data, 105, None).unwrap();
    assert_eq!(offsets(&decoded), (105..115).collect::<Vec<_>>());
    assert_eq!(decoded.records[0].value, Bytes::from_static(b"v105"));
    let decoded = decode(&data, 112, None).unwrap();
    assert_eq!(offsets(&decoded), vec![112, 113, 114]);
    let decoded = decode(&data, 500, None).unwrap();
    assert!(decoded.records.is_empty());
    assert_eq!(decoded.next_offset, Some(115));

    // the same inside a compressed batch
    let inputs = Inputs::new(10);
    let mut out = BytesMut::new();
    encode(&mut out, &inputs.records(), Compression::Lz4, None).unwrap();
    let decoded = decode(&out.freeze(), 7, None).unwrap();
    assert_eq!(offsets(&decoded), vec![7, 8, 9]);
}

/// Control batches yield no records but move `next_offset`, alone or after data.
#[test]
fn control_batches_are_skipped() {
    let decoded = dec(&marker(4, 9, 1)).unwrap();
    assert!(decoded.records.is_empty());
    assert_eq!(decoded.next_offset, Some(5));

    let data = [
        data_batch(0, 9, true, 4),
        marker(4, 9, 1),
        data_batch(5, 9, true, 1),
    ]
    .concat();
    let decoded = dec(&data).unwrap();
    assert_eq!(offsets(&decoded), vec![0, 1, 2, 3, 5]);
    assert_eq!(decoded.next_offset, Some(6));
}

/// A batch of no records (left by compaction) moves `next_offset` and yields nothing.
#[test]
fn empty_batch_moves_next_offset() {
    let mut head = Head::new(10, 0);
    head.last_offset_delta = 4;
    let decoded = dec(&raw_batch(head, &[])).unwrap();
    assert!(decoded.records.is_empty());
    assert_eq!(decoded.next_offset, Some(15));
}

/// `read_committed` per KIP-98: the aborted transactions of producer 7 (from 0, ended by
/// its abort marker at 5, and from 11) are left out, its committed transaction between them
/// and the other producers' records are kept; without `aborted`, everything is returned.
#[test]
fn read_committed_drops_aborted_transactions() {
    let data = Bytes::from(
        [
            data_batch(0, 7, true, 3),  // 0..=2 aborted
            data_batch(3, 8, true, 2),  // 3..=4 committed
            marker(5, 7, 0),            // abort of producer 7
            marker(6, 8, 1),            // commit of producer 8
            data_batch(7, 7, true, 2),  // 7..=8 committed
            data_batch(9, 9, false, 2), // 9..=10 not transactional: never dropped
            data_batch(11, 7, true, 2), // 11..=12 aborted again
            marker(13, 7, 0),
        ]
        .concat(),
    );
    // unsorted, as a response may list them
    let aborted = [(7, 11), (9, 9), (7, 0)];
    let committed = decode(&data, 0, Some(&aborted)).unwrap();
    assert_eq!(offsets(&committed), vec![3, 4, 7, 8, 9, 10]);
    assert_eq!(committed.next_offset, Some(14));

    let uncommitted = decode(&data, 0, None).unwrap();
    assert_eq!(
        offsets(&uncommitted),
        vec![0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 12]
    );

    // no aborted transactions: read_committed keeps all data records
    let all = decode(&data, 0, Some(&[])).unwrap();
    assert_eq!(offsets(&all), offsets(&uncommitted));

    // from 4: the state of earlier batches still counts
    let later = decode(&data, 4, Some(&aborted)).unwrap();
    assert_eq!(offsets(&later), vec![4, 7, 8, 9, 10]);
}

/// A trailing batch cut anywhere (the broker stops at max bytes) is ignored; the batches
/// before it decode, and a lone cut batch gives nothing and no `next_offset`.
#[test]
fn truncated_trailing_batch_is_ignored() {
    let first = data_batch(0, -1, false, 3);
    let mut out = BytesMut::new();
    let inputs = Inputs::new(30);
    encode(&mut out, &inputs.records(), Compression::Zstd, None).unwrap();
    out[..8].copy_from_slice(&3i64.to_be_bytes());
    let second = out.to_vec();
    for cut in 0..second.len() {
        let data = [&first[..], &second[..cut]].concat();
        let decoded = dec(&data).unwrap();
        assert_eq!(offsets(&decoded), vec![0, 1, 2], "cut at {cut}");
        assert_eq!(decoded.next_offset, Some(3));
        let alone = dec(&second[..cut]).unwrap();
        assert!(alone.records.is_empty());
        assert_eq!(alone.next_offset, None);
    }
    assert_eq!(dec(&[first, second].concat()).unwrap().records.len(), 33);
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A changed byte fails the CRC check, naming the batch's offset and both CRCs.
#[test]
fn crc_mismatch_is_an_error() {
    let mut batch = data_batch(42, -1, false, 3);
    let last = batch.len() - 1;
    batch[last] ^= 0x01;
    let err = dec(&batch).unwrap_err();
    assert!(
        matches!(err, BatchError::CrcMismatch { offset: 42, stored, computed } if stored != computed)
    );
    let message = err.to_string();
    assert!(
        message.starts_with("batch at offset 42: CRC mismatch (stored 0x"),
        "{message}"
    );
    assert!(message.contains(", computed 0x"), "{message}");
}

/// Magic 0 and 1 (message sets of old brokers) are refused by name, even in a cut batch.
#[test]
fn old_magic_is_an_error() {
    let mut batch = data_batch(42, -1, false, 3);
    batch[16] = 1;
    let err = dec(&batch).unwrap_err();
    assert_eq!(
        err,
        BatchError::UnsupportedMagic {
            offset: 42,
            magic: 1
        }
    );
    assert_eq!(
        err.to_string(),
        "batch at offset 42: unsupported magic 1 (only record batch v2 is read)"
    );
    assert_eq!(
        dec(&batch[..17]).unwrap_err(),
        BatchError::UnsupportedMagic {
            offset: 42,
            magic: 1
        }
    );
}

/// A batch length below a header's size, an unknown codec, a negative count, bytes after
/// the last record, and a record whose length disagrees with its fields are errors.
#[test]
fn malformed_headers_are_errors() {
    let good = data_batch(42, -1, false, 2);

    let mut short = good.clone();
    short[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert_eq!(
        dec(&short).unwrap_err(),
        BatchError::BatchLength {
            offset: 42,
            length: 10
        }
    );
    short[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert_eq!(
        dec(&short).unwrap_err(),
        BatchError::BatchLength {
            offset: 42,
            length: -5
        }
    );

    let mut codec = good.clone();
    codec[22] |= 5;
    fix_crc(&mut codec);
    assert_eq!(
        dec(&codec).unwrap_err(),
        BatchError::UnknownCompression {
            offset: 42,
            codec: 5
        }
    );

    let mut negative = good.clone();
    negative[57..61].copy_from_slice(&(-1i32).to_be_bytes());
    fix_crc(&mut negative);
    assert!(matches!(
        dec(&negative).unwrap_err(),
        BatchError::Malformed { offset: 42, .. }
    ));

    let mut fewer = good.clone();
    fewer[57..61].copy_from_slice(&1i32.to_be_bytes());
    fix_crc(&mut fewer);
    let err = dec(&fewer).unwrap_err();
    assert!(
        err.to_string()
            .contains("bytes after the last of 1 records"),
        "{err}"
    );

    // record 1's length says one byte more than its fields, which the batch then holds
    let recs = [rec(0, None, Some(b"a")), rec(1, None, Some(b"b"))];
    let mut section = raw_records(&recs);
    let second = section.len() / 2;
    assert_eq!(section[second], 0x0e); // 7 bytes
    section[second] = 0x10; // 8 bytes
    section.push(0);
    let err = dec(&raw_batch(Head::new(42, 2), &section)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "batch at offset 42: record 1: record length: does not match the record's fields at byte {second}"
        )
    );
}

/// Counts and lengths that the bytes cannot hold are errors found at once, not allocations
/// (a record count of i32::MAX with 10 bytes, a header count and a key length of i32::MAX,
/// varints of too many bytes).
#[test]
fn hostile_counts_are_quick_errors() {
    let started = Instant::now();

    let mut head = Head::new(42, i32::MAX);
    head.last_offset_delta = 0;
    let err = dec(&raw_batch(head, &[0; 10])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "batch at offset 42: record count 2147483647 is more than 10 bytes of records can hold"
    );

    // a record: length, attributes, timestamp delta, offset delta, key null, value "v",
    // then a header count of i32::MAX (zigzag 0xfffffffe: fe ff ff ff 0f)
    let body = [
        0x00, 0x00, 0x00, 0x01, 0x02, b'v', 0xfe, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut section = vec![(body.len() * 2) as u8];
    section.extend_from_slice(&body);
    let err = dec(&raw_batch(Head::new(42, 1), &section)).unwrap_err();
    assert_eq!(
        err,
        BatchError::Record {
            offset: 42,
            index: 0,
            field: "header count",
            problem: "exceeds what the bytes that remain hold",
            at: 7
        }
    );

    // a key length of i32::MAX
    let body = [
        0x00, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff, 0x0f, b'k', 0, 0, 0, 0,
    ];
    let mut section = vec![(body.len() * 2) as u8];
    section.extend_from_slice(&body);
    let err = dec(&raw_batch(Head::new(42, 1), &section)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "batch at offset 42: record 0: key: length exceeds the bytes that remain at byte 4"
    );

    // a record length of 11 bytes (a varint holds at most 5), and of 6
    for len in [11, 6] {
        let mut section = vec![0xff; len - 1];
        section.push(0x01);
        section.extend_from_slice(&[0; 20]);
        let err = dec(&raw_batch(Head::new(42, 1), &section)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "batch at offset 42: record 0: record length: varint too long at byte 0"
        );
    }

    // a timestamp delta of 11 bytes (a varlong holds at most 10)
    let mut body = vec![0x00];
    body.extend_from_slice(&[0xff; 10]);
    body.extend_from_slice(&[0x01, 0x00, 0x01, 0x00, 0x00]);
    let mut section = vec![(body.len() * 2) as u8];
    section.extend_from_slice(&body);
    section.extend_from_slice(&[0; 8]);
    let err = dec(&raw_batch(Head::new(42, 1), &section)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "batch at offset 42: record 0: timestamp delta: varint too long at byte 2"
    );

    // a batch length of i32::MAX with few bytes is a cut batch, not an allocation
    let mut huge = data_batch(0, -1, false, 1);
    huge[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    let decoded = dec(&huge).unwrap();
    assert_eq!(decoded.next_offset, None);

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

/// A batch that decompresses beyond 64 MiB is refused: a zstd frame that declares its size,
/// one that does not (RLE blocks, as a stream), a raw snappy block declaring 1 GiB, xerial
/// blocks adding up beyond the cap, and an LZ4 frame of long matches.
#[test]
fn decompression_is_capped() {
    let bomb = |codec: Compression, section: &[u8]| {
        let mut head = Head::new(42, 1);
        head.attributes = codec.id();
        let err = dec(&raw_batch(head, section)).unwrap_err();
        assert_eq!(
            err,
            BatchError::DecompressedTooLarge { offset: 42 },
            "{codec:?}"
        );
        assert_eq!(
            err.to_string(),
            "batch at offset 42: decompressed size exceeds 64 MiB"
        );
    };

    // zstd frame header: single segment, 8-byte content size of 1 GiB
    let mut declared = vec![0x28, 0xb5, 0x2f, 0xfd, 0xe0];
    declared.extend_from_slice(&(1u64 << 30).to_le_bytes());
    declared.extend_from_slice(&[0x01, 0x00, 0x00]); // an empty last raw block
    bomb(Compression::Zstd, &declared);

    // zstd frame without content size, window 1 MiB, RLE blocks of 128 KiB each
    let mut stream = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x50];
    let blocks = (64 << 20) / (128 << 10) + 1;
    for i in 0..blocks {
        let last = u32::from(i == blocks - 1);
        let header = last | (1 << 1) | ((128 << 10) << 3);
        stream.extend_from_slice(&header.to_le_bytes()[..3]);
        stream.push(b'z');
    }
    bomb(Compression::Zstd, &stream);

    // raw snappy declaring 1 GiB (varint 0x80 0x80 0x80 0x80 0x04)
    bomb(
        Compression::Snappy,
        &[0x80, 0x80, 0x80, 0x80, 0x04, 0x00, 0x00],
    );

    // xerial blocks each declaring 40 MiB (varint 0x80 0x80 0x80 0x14)
    let mut xerial = XERIAL_MAGIC.to_vec();
    xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
    let block = [0x80, 0x80, 0x80, 0x14, 0x00];
    for _ in 0..2 {
        xerial.extend_from_slice(&(block.len() as i32).to_be_bytes());
        xerial.extend_from_slice(&block);
    }
    // the first block is really decoded (and fails) before the second is looked at, so cap
    // the first at a real small block
    let small = snap::raw::Encoder::new().compress_vec(b"abc").unwrap();
    let mut xerial2 = XERIAL_MAGIC.to_vec();
    xerial2.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
    xerial2.extend_from_slice(&(small.len() as i32).to_be_bytes());
    xerial2.extend_from_slice(&small);
    xerial2.extend_from_slice(&(5i32).to_be_bytes());
    xerial2.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // declares 4 GiB - 1
    bomb(Compression::Snappy, &xerial2);
    let mut head = Head::new(42, 1);
    head.attributes = Compression::Snappy.id();
    assert!(dec(&raw_batch(head, &xerial)).is_err());

    // LZ4: 17 blocks of 4 MiB, each one literal and one long match at distance 1, then five
    // literals
    let mut block = vec![0x1f, 0x00, 0x01, 0x00];
    let extra = (4 << 20) - 6 - 19;
    block.extend(std::iter::repeat_n(0xff, extra / 255));
    block.push((extra % 255) as u8);
    block.extend_from_slice(&[0x50, 1, 2, 3, 4, 5]);
    let descriptor = [0x60, 0x70];
    let mut frame = vec![0x04, 0x22, 0x4d, 0x18];
    frame.extend_from_slice(&descriptor);
    frame.push((xxh32(&descriptor, 0) >> 8) as u8);
    for _ in 0..17 {
        frame.extend_from_slice(&(block.len() as u32).to_le_bytes());
        frame.extend_from_slice(&block);
    }
    frame.extend_from_slice(&[0; 4]);
    bomb(Compression::Lz4, &frame);
    // the same frame of 16 blocks (64 MiB) is within the cap
    let mut head = Head::new(42, 1);
    head.attributes = Compression::Lz4.id();
    let small_frame: Vec<u8> = [
        &frame[..7],
        &frame[7..7 + 16 * (block.len() + 4)],
        &[0; 4][..],
    ]
    .concat();
    let err = dec(&raw_batch(head, &small_frame)).unwrap_err();
    assert!(
        matches!(
            err,
            BatchError::Record { .. } | BatchError::Malformed { .. }
        ),
        "{err}"
    );
}

/// Corrupt compressed data is an error naming the codec.
#[test]
fn corrupt_compressed_data_names_the_codec() {
    for (codec, name) in [
        (Compression::Gzip, "gzip"),
        (Compression::Snappy, "snappy"),
        (Compression::Lz4, "lz4"),
        (Compression::Zstd, "zstd"),
    ] {
        let mut head = Head::new(42, 1);
        head.attributes = codec.id();
        let err = dec(&raw_batch(head, b"this is not compressed at all")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("batch at offset 42: {name}: ")),
            "{codec:?}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Codec framings
// ---------------------------------------------------------------------------------------------

/// A records section and its expected offsets, for batches compressed by hand.
fn section_of(n: i32) -> (Vec<u8>, Head) {
    let recs: Vec<Rec> = (0..n)
        .map(|d| {
            let mut r = rec(
                d,
                Some(format!("key{d}").as_bytes()),
                Some(format!("value {d} ").repeat(50).as_bytes()),
            );
            r.headers = vec![(b"h".to_vec(), None)];
            r
        })
        .collect();
    (raw_records(&recs), Head::new(0, n))
}

fn decode_compressed(codec: Compression, head: Head, compressed: &[u8], n: i32) {
    let mut head = head;
    head.attributes = codec.id();
    let decoded = dec(&raw_batch(head, compressed)).unwrap();
    assert_eq!(
        offsets(&decoded),
        (0..i64::from(n)).collect::<Vec<_>>(),
        "{codec:?}"
    );
    assert_eq!(decoded.records[3].value, Bytes::from("value 3 ".repeat(50)));
    assert_eq!(decoded.records[3].headers, vec![("h".to_owned(), None)]);
}

/// Snappy as one raw block (librdkafka, Go clients) and in the xerial framing (Java) with
/// several blocks both decode; `encode` writes the xerial framing.
#[test]
fn snappy_raw_and_xerial() {
    let (section, head) = section_of(200);
    assert!(section.len() > 64 * 1024);
    let raw = snap::raw::Encoder::new().compress_vec(&section).unwrap();
    decode_compressed(Compression::Snappy, head, &raw, 200);

    let mut xerial = XERIAL_MAGIC.to_vec();
    xerial.extend_from_slice(&1i32.to_be_bytes());
    xerial.extend_from_slice(&1i32.to_be_bytes());
    for chunk in section.chunks(20_000) {
        let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
        xerial.extend_from_slice(&(block.len() as i32).to_be_bytes());
        xerial.extend_from_slice(&block);
    }
    decode_compressed(Compression::Snappy, head, &xerial, 200);

    let records = [OutRecord {
        key: None,
        value: &[7; 100_000],
        headers: &[],
        timestamp: 0,
    }];
    let mut out = BytesMut::new();
    encode(&mut out, &records, Compression::Snappy, None).unwrap();
    assert_eq!(&out[61..69], &XERIAL_MAGIC);
    assert_eq!(&out[69..77], &[0, 0, 0, 1, 0, 0, 0, 1]);
    // 100 KiB of input: four blocks of at most 32 KiB each
    let mut rest = &out[77..];
    let mut blocks = 0;
    while !rest.is_empty() {
        let len = be_i32(rest, 0) as usize;
        let block = &rest[4..4 + len];
        assert!(snap::raw::decompress_len(block).unwrap() <= 32 * 1024);
        rest = &rest[4 + len..];
        blocks += 1;
    }
    assert_eq!(blocks, 4);
}

/// LZ4 frames as librdkafka may write them (content size and content checksum, blocks stored
/// uncompressed), built here by hand, decode; so do linked-block frames; `encode` writes the
/// Java client's frame header (version 1, independent blocks, 64 KiB, no checksums).
#[test]
fn lz4_frames() {
    assert_eq!(xxh32(b"", 0), 0x02cc_5d05);
    let (section, head) = section_of(200);

    let mut descriptor = vec![0x6c, 0x40]; // version 1, independent, content size + checksum; 64 KiB
    descriptor.extend_from_slice(&(section.len() as u64).to_le_bytes());
    let mut frame = vec![0x04, 0x22, 0x4d, 0x18];
    frame.extend_from_slice(&descriptor);
    frame.push((xxh32(&descriptor, 0) >> 8) as u8);
    for chunk in section.chunks(64 * 1024) {
        frame.extend_from_slice(&(chunk.len() as u32 | 0x8000_0000).to_le_bytes());
        frame.extend_from_slice(chunk);
    }
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(&xxh32(&section, 0).to_le_bytes());
    decode_compressed(Compression::Lz4, head, &frame, 200);

    // a wrong content checksum is refused
    let last = frame.len() - 1;
    frame[last] ^= 1;
    let mut bad = head;
    bad.attributes = Compression::Lz4.id();
    assert!(matches!(
        dec(&raw_batch(bad, &frame)).unwrap_err(),
        BatchError::Decompress { codec: "lz4", .. }
    ));

    let info = lz4_flex::frame::FrameInfo::new()
        .block_mode(lz4_flex::frame::BlockMode::Linked)
        .block_checksums(true)
        .content_checksum(true);
    let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
    std::io::Write::write_all(&mut encoder, &section).unwrap();
    decode_compressed(Compression::Lz4, head, &encoder.finish().unwrap(), 200);

    let records = [OutRecord {
        key: None,
        value: b"abc",
        headers: &[],
        timestamp: 0,
    }];
    let mut out = BytesMut::new();
    encode(&mut out, &records, Compression::Lz4, None).unwrap();
    assert_eq!(&out[61..65], &[0x04, 0x22, 0x4d, 0x18]);
    assert_eq!(
        out[65], 0x60,
        "FLG: version 1, independent blocks, no checksums, no size"
    );
    assert_eq!(out[66], 0x40, "BD: 64 KiB blocks");
    assert_eq!(out[67], (xxh32(&[0x60, 0x40], 0) >> 8) as u8, "HC");
}

/// Gzip of several members and zstd as a stream without a declared size (zstd-jni) or as
/// two frames decode; `encode` writes a gzip stream and a zstd frame.
#[test]
fn gzip_and_zstd_framings() {
    use std::io::Write as _;
    let (section, head) = section_of(50);
    let half = section.len() / 2;
    let mut members = Vec::new();
    for part in [&section[..half], &section[half..]] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(part).unwrap();
        members.extend_from_slice(&gz.finish().unwrap());
    }
    decode_compressed(Compression::Gzip, head, &members, 50);

    let mut z = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    z.write_all(&section).unwrap();
    let streamed = z.finish().unwrap();
    assert!(matches!(
        zstd::zstd_safe::get_frame_content_size(&streamed),
        Ok(None)
    ));
    decode_compressed(Compression::Zstd, head, &streamed, 50);

    let two = [
        zstd::bulk::compress(&section[..half], 1).unwrap(),
        zstd::bulk::compress(&section[half..], 1).unwrap(),
    ]
    .concat();
    decode_compressed(Compression::Zstd, head, &two, 50);

    let records = [OutRecord {
        key: None,
        value: b"abc",
        headers: &[],
        timestamp: 0,
    }];
    let mut out = BytesMut::new();
    encode(&mut out, &records, Compression::Gzip, None).unwrap();
    assert_eq!(&out[61..63], &[0x1f, 0x8b]);
    let mut out = BytesMut::new();
    encode(&mut out, &records, Compression::Zstd, None).unwrap();
    assert_eq!(&out[61..65], &[0x28, 0xb5, 0x2f, 0xfd]);
}

// ---------------------------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------------------------

/// A xorshift64 generator: deterministic, so a failure repeats.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Many random mutations of valid batches (every codec, transactional and control batches,
/// several batches in a row) never panic, with and without `read_committed`, and with the
/// CRC fixed after the mutation for most of them so the mutation reaches the decompressors
/// and the record parser.
#[test]
fn random_mutations_never_panic() {
    let inputs = Inputs::new(12);
    let records = inputs.records();
    let mut bases: Vec<Vec<u8>> = ALL
        .iter()
        .map(|&codec| {
            let mut out = BytesMut::new();
            encode(
                &mut out,
                &records,
                codec,
                Some(ProducerStamp {
                    producer_id: 7,
                    producer_epoch: 0,
                    base_sequence: 0,
                }),
            )
            .unwrap();
            out.to_vec()
        })
        .collect();
    bases.push(
        [
            data_batch(0, 7, true, 3),
            marker(3, 7, 0),
            data_batch(4, 8, false, 2),
        ]
        .concat(),
    );
    let (section, head) = section_of(5);
    bases.push(raw_batch(head, &section));

    let interesting: [i32; 8] = [0, -1, 1, i32::MAX, i32::MIN, 0x7fff, 49, 61];
    let aborted = [(7, 0), (8, 2)];
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut ok = 0;
    for round in 0..3000 {
        for base in &bases {
            let mut data = base.clone();
            for _ in 0..=rng.below(3) {
                match rng.below(7) {
                    0 => {
                        let i = rng.below(data.len());
                        data[i] ^= 1 << rng.below(8);
                    }
                    1 => {
                        let i = rng.below(data.len());
                        data[i] = [0x00, 0xff, 0x7f, 0x80, 0x01][rng.below(5)];
                    }
                    2 => data.truncate(rng.below(data.len() + 1)),
                    3 => {
                        let i = rng.below(data.len() + 1);
                        let n = rng.below(8) + 1;
                        let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                        data.splice(i..i, bytes);
                    }
                    4 if data.len() >= 4 => {
                        let i = rng.below(data.len() - 3);
                        let v = interesting[rng.below(interesting.len())];
                        data[i..i + 4].copy_from_slice(&v.to_be_bytes());
                    }
                    5 if data.len() > 61 => {
                        // mutate the records section (compressed or not)
                        let i = 61 + rng.below(data.len() - 61);
                        data[i] = rng.next() as u8;
                    }
                    _ => {
                        let i = rng.below(data.len());
                        let j = rng.below(data.len());
                        data.swap(i, j);
                    }
                }
                if data.is_empty() {
                    break;
                }
            }
            if rng.below(10) < 8 {
                fix_crc(&mut data);
            }
            let bytes = Bytes::from(data);
            let from = [0, 3, i64::MAX, i64::MIN][rng.below(4)];
            let result = std::panic::catch_unwind(|| {
                let a = decode(&bytes, from, None);
                let b = decode(&bytes, from, Some(&aborted));
                (a.is_ok(), b.is_ok())
            });
            match result {
                Ok((a, _)) => ok += usize::from(a),
                Err(_) => panic!("round {round}: decode panicked on {:02x?}", &bytes[..]),
            }
        }
    }
    // the mutations are not all caught by the CRC: many still decode
    assert!(ok > 1000, "only {ok} mutated inputs decoded");
}

/// The fuzz entry point returns on junk, on valid batches and on nothing.
#[test]
fn fuzz_entry_point() {
    fuzz_decode(&[]);
    fuzz_decode(&[0xff; 100]);
    fuzz_decode(&[marker(3, 7, 0), data_batch(0, 7, true, 2)].concat());
}

// ---------------------------------------------------------------------------------------------
// xxHash32, for LZ4 frame checksums built by hand
// ---------------------------------------------------------------------------------------------

const P1: u32 = 0x9e37_79b1;
const P2: u32 = 0x85eb_ca77;
const P3: u32 = 0xc2b2_ae3d;
const P4: u32 = 0x27d4_eb2f;
const P5: u32 = 0x1656_67b1;

fn xxh32(data: &[u8], seed: u32) -> u32 {
    let word = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().unwrap());
    let round = |acc: u32, input: u32| {
        acc.wrapping_add(input.wrapping_mul(P2))
            .rotate_left(13)
            .wrapping_mul(P1)
    };
    let mut i = 0;
    let mut h = if data.len() >= 16 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while i + 16 <= data.len() {
            for (lane, acc) in v.iter_mut().enumerate() {
                *acc = round(*acc, word(i + lane * 4));
            }
            i += 16;
        }
        v[0].rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(data.len() as u32);
    while i + 4 <= data.len() {
        h = h
            .wrapping_add(word(i).wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
        i += 4;
    }
    for &b in &data[i..] {
        h = h
            .wrapping_add(u32::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}
