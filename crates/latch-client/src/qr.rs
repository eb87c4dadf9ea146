//! Safety-number QR codes: drawn from the payload (a module matrix for the UI, SVG for
//! export) and read back from an image (a screenshot, a photo, a pasted or dropped file).
//!
//! Decoding takes untrusted bytes: the file size and the image dimensions are capped before
//! any pixel is decoded, so a small file cannot make us allocate gigabytes.

use std::io::Cursor;

use image::{ImageReader, Limits};
use qrcode::{EcLevel, QrCode};

/// Largest image file accepted.
pub const MAX_IMAGE_BYTES: usize = 25 * 1024 * 1024;

/// Largest width or height accepted, in pixels (a 8K screenshot fits).
pub const MAX_IMAGE_SIDE: u32 = 8_192;

/// Most codes read from one image.
const MAX_CODES: usize = 8;

/// What went wrong with a QR code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The payload does not fit a QR code.
    #[error("the payload is too long for a QR code")]
    TooLong,
    /// The file is larger than [`MAX_IMAGE_BYTES`].
    #[error("the image is too large (25 MiB at most)")]
    FileTooLarge,
    /// The bytes are not a PNG or JPEG image, or its size is beyond [`MAX_IMAGE_SIDE`].
    #[error("the file is not a readable PNG or JPEG image of at most 8192×8192 pixels")]
    Image,
    /// The image holds no readable QR code.
    #[error("no QR code could be read in the image")]
    NoCode,
}

fn code(payload: &[u8]) -> Result<QrCode, QrError> {
    QrCode::with_error_correction_level(payload, EcLevel::M).map_err(|_| QrError::TooLong)
}

/// The code's modules, row by row (`true` = dark), without the quiet zone.
///
/// # Errors
/// [`QrError::TooLong`].
pub fn modules(payload: &[u8]) -> Result<Vec<Vec<bool>>, QrError> {
    let code = code(payload)?;
    let width = code.width();
    let colors = code.to_colors();
    Ok(colors
        .chunks(width)
        .map(|row| row.iter().map(|c| *c == qrcode::Color::Dark).collect())
        .collect())
}

/// The code as a standalone SVG document (dark on light, with the quiet zone).
///
/// # Errors
/// [`QrError::TooLong`].
pub fn svg(payload: &[u8]) -> Result<String, QrError> {
    Ok(code(payload)?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// Reads every QR code in a PNG or JPEG image and returns their raw payloads.
///
/// # Errors
/// [`QrError::FileTooLarge`], [`QrError::Image`], or [`QrError::NoCode`] when nothing
/// decodes.
pub fn decode_image(bytes: &[u8]) -> Result<Vec<Vec<u8>>, QrError> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(QrError::FileTooLarge);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| QrError::Image)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let luma = reader.decode().map_err(|_| QrError::Image)?.into_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(luma);
    let mut payloads = Vec::new();
    for grid in prepared.detect_grids().into_iter().take(MAX_CODES) {
        let mut out = Vec::new();
        if grid.decode_to(&mut out).is_ok() {
            payloads.push(out);
        }
    }
    if payloads.is_empty() {
        return Err(QrError::NoCode);
    }
    Ok(payloads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, ImageFormat, Luma};

    /// Draws modules the way a screen shows them: 6 px per module, a 4-module margin.
    fn screenshot(modules: &[Vec<bool>], format: ImageFormat) -> Vec<u8> {
        let scale = 6u32;
        let side = (modules.len() as u32 + 8) * scale;
        let img = GrayImage::from_fn(side, side, |x, y| {
            let (mx, my) = ((x / scale) as usize, (y / scale) as usize);
            let dark = mx >= 4
                && my >= 4
                && modules
                    .get(my - 4)
                    .and_then(|row| row.get(mx - 4))
                    .copied()
                    .unwrap_or(false);
            Luma([if dark { 0 } else { 255 }])
        });
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_drawn_code_reads_back_from_png_and_jpeg() {
        // A safety-number payload: binary, not UTF-8.
        let payload: Vec<u8> = (0..=255u8).cycle().skip(7).take(74).collect();
        let m = modules(&payload).unwrap();
        assert!(m.iter().all(|row| row.len() == m.len()), "square");
        for format in [ImageFormat::Png, ImageFormat::Jpeg] {
            let read = decode_image(&screenshot(&m, format)).unwrap();
            assert_eq!(read, vec![payload.clone()], "{format:?}");
        }
        let doc = svg(&payload).unwrap();
        assert!(doc.starts_with("<?xml") && doc.contains("<svg"), "{doc}");
    }

    #[test]
    fn bad_images_are_clear_errors() {
        assert_eq!(decode_image(b"not an image"), Err(QrError::Image));
        let blank = GrayImage::from_pixel(64, 64, Luma([255]));
        let mut png = Cursor::new(Vec::new());
        blank.write_to(&mut png, ImageFormat::Png).unwrap();
        assert_eq!(decode_image(&png.into_inner()), Err(QrError::NoCode));
        // A PNG header claiming 100,000 × 100,000 pixels is refused before decoding.
        let mut huge = Vec::new();
        huge.extend_from_slice(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
        huge.extend_from_slice(&100_000u32.to_be_bytes());
        huge.extend_from_slice(&100_000u32.to_be_bytes());
        huge.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decode_image(&huge), Err(QrError::Image));
        assert_eq!(
            decode_image(&vec![0; MAX_IMAGE_BYTES + 1]),
            Err(QrError::FileTooLarge)
        );
        assert_eq!(modules(&[0; 4000]), Err(QrError::TooLong));
    }
}
