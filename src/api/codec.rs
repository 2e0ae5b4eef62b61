//! The protobuf codec with small buffers. tonic's default encodes each
//! response stream into an 8 KiB buffer kept for the stream's life; with
//! tens of thousands of mostly idle progress streams that buffer is a large
//! share of their memory, and the messages are small (an event is well
//! under 1 KiB). The buffer grows when a larger message needs it.

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

const BUFFER_SIZE: usize = 1024;
/// As tonic's default: past this much buffered output, yield to the writer.
const YIELD_THRESHOLD: usize = 32 * 1024;

#[derive(Debug, Clone)]
pub struct LeanCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        LeanCodec(ProstCodec::default())
    }
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD))
    }
}
