/// A value that can serve as a partition key.
///
/// Integers are written in decimal (the Go kit keys user events by the decimal user id),
/// strings as their UTF-8 bytes, byte vectors as they are. `None` means "no key": the record
/// is spread over partitions instead of being pinned to one.
///
/// # Examples
///
/// ```
/// use godev_kafka::event::PartitionKey;
///
/// assert_eq!(42_i64.partition_key(), Some(b"42".to_vec()));
/// assert_eq!("user-1".partition_key(), Some(b"user-1".to_vec()));
/// assert_eq!(None::<u32>.partition_key(), None);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a partition key",
    note = "keys are integers, strings, byte vectors, or `Option` of one of them"
)]
pub trait PartitionKey {
    /// The key bytes, or `None` for an unkeyed record.
    fn partition_key(&self) -> Option<Vec<u8>>;
}

macro_rules! decimal_keys {
    ($($t:ty),*) => {$(
        impl PartitionKey for $t {
            fn partition_key(&self) -> Option<Vec<u8>> {
                Some(self.to_string().into_bytes())
            }
        }
    )*};
}

decimal_keys!(
    i8, i16, i32, i64, i128, u8, u16, u32, u64, u128, isize, usize
);

impl PartitionKey for str {
    fn partition_key(&self) -> Option<Vec<u8>> {
        Some(self.as_bytes().to_vec())
    }
}

impl PartitionKey for String {
    fn partition_key(&self) -> Option<Vec<u8>> {
        self.as_str().partition_key()
    }
}

impl PartitionKey for Vec<u8> {
    fn partition_key(&self) -> Option<Vec<u8>> {
        Some(self.clone())
    }
}

impl<T: PartitionKey + ?Sized> PartitionKey for &T {
    fn partition_key(&self) -> Option<Vec<u8>> {
        (**self).partition_key()
    }
}

impl<T: PartitionKey> PartitionKey for Option<T> {
    fn partition_key(&self) -> Option<Vec<u8>> {
        self.as_ref().and_then(PartitionKey::partition_key)
    }
}
