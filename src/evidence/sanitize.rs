//! Makes an uploaded image safe to show: its real type is read from its
//! content, its size and pixel count are bounded, and it is decoded and
//! encoded again. The new file carries pixels only, so EXIF (GPS position,
//! camera and phone model, time taken), XMP, comments and anything hidden
//! after the image data are gone. The EXIF orientation is applied to the
//! pixels first, so the photo still stands the right way up.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::domain::evidence::{ImageType, UploadRefusal};

/// JPEG quality of re-encoded photos: visually the same as a phone's.
const JPEG_QUALITY: u8 = 85;

/// A sanitised image, ready to store.
#[derive(Debug, Clone)]
pub struct CleanImage {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Checks and re-encodes `bytes`, which the grant says are `declared`.
/// CPU-bound: call it off the async workers.
pub fn sanitize(
    bytes: &[u8],
    declared: ImageType,
    max_pixels: u64,
) -> Result<CleanImage, UploadRefusal> {
    let actual = ImageType::sniff(bytes).ok_or(UploadRefusal::NotAnImage)?;
    if actual != declared {
        return Err(UploadRefusal::WrongType { declared, actual });
    }
    let format = match actual {
        ImageType::Jpeg => ImageFormat::Jpeg,
        ImageType::Png => ImageFormat::Png,
    };

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    // Four bytes per pixel decoded, twice over for the rotated copy.
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|_| UploadRefusal::Undecodable)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(UploadRefusal::TooManyPixels { max_pixels });
    }
    let orientation = decoder
        .orientation()
        .map_err(|_| UploadRefusal::Undecodable)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|_| UploadRefusal::Undecodable)?;
    image.apply_orientation(orientation);

    let mut out = Vec::new();
    let encoded = match actual {
        // JPEG has no alpha channel.
        ImageType::Jpeg => DynamicImage::ImageRgb8(image.to_rgb8())
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)),
        ImageType::Png => image.write_with_encoder(PngEncoder::new(&mut out)),
    };
    encoded.map_err(|_| UploadRefusal::Undecodable)?;
    Ok(CleanImage {
        bytes: out,
        width: image.width(),
        height: image.height(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 5) as u8, 90])
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(image)
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, 90))
            .unwrap();
        out
    }

    /// An APP1 segment with a tiny EXIF block, right after the start marker.
    fn with_app1(jpeg: &[u8], payload: &[u8]) -> Vec<u8> {
        let length = u16::try_from(payload.len() + 2).unwrap();
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn metadata_does_not_survive_and_pixels_do() {
        let original = with_app1(&jpeg(32, 16), b"Exif\0\0MM\0\x2a\0\0\0\x08SECRET-GPS");
        let clean = sanitize(&original, ImageType::Jpeg, 1_000_000).unwrap();
        assert!(original.windows(10).any(|w| w == b"SECRET-GPS"));
        assert!(!clean.bytes.windows(10).any(|w| w == b"SECRET-GPS"));
        assert!(!clean.bytes.windows(6).any(|w| w == b"Exif\0\0"));
        assert_eq!((clean.width, clean.height), (32, 16));
        assert_eq!(ImageType::sniff(&clean.bytes), Some(ImageType::Jpeg));
    }

    #[test]
    fn a_file_named_jpeg_that_is_not_is_refused() {
        let refused = sanitize(b"<html>not a photo</html>", ImageType::Jpeg, 1_000_000);
        assert_eq!(refused.unwrap_err(), UploadRefusal::NotAnImage);

        let png_bytes = {
            let mut out = Vec::new();
            DynamicImage::ImageRgb8(image::RgbImage::new(4, 4))
                .write_with_encoder(PngEncoder::new(&mut out))
                .unwrap();
            out
        };
        assert!(matches!(
            sanitize(&png_bytes, ImageType::Jpeg, 1_000_000),
            Err(UploadRefusal::WrongType { .. })
        ));
        assert!(sanitize(&png_bytes, ImageType::Png, 1_000_000).is_ok());

        let mut truncated = jpeg(32, 32);
        truncated.truncate(40);
        assert_eq!(
            sanitize(&truncated, ImageType::Jpeg, 1_000_000).unwrap_err(),
            UploadRefusal::Undecodable
        );
    }

    #[test]
    fn images_over_the_pixel_limit_are_refused_before_decoding() {
        let refused = sanitize(&jpeg(64, 64), ImageType::Jpeg, 64 * 63);
        assert_eq!(
            refused.unwrap_err(),
            UploadRefusal::TooManyPixels {
                max_pixels: 64 * 63
            }
        );
    }
}
