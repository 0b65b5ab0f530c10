//! `ImageFrame`: the image packet type (MediaPipe's `ImageFrame`).
//!
//! Pixels are 8-bit, tightly packed, row major, in an `Arc`: cloning a frame or sending it to
//! several consumers never copies pixels, and a calculator that edits a frame it received
//! copies only if someone else still holds it ([`ImageFrame::mat_mut`], copy on write).
//! [`ImageFrame::mat`] is an OpenCV `Mat` header over the same bytes (no copy).
//!
//! Channel order follows the format's name: `SRGB` is R, G, B (OpenCV's own images are B, G,
//! R; [`ImageFrame::from_bgr_mat`] and [`ImageFrame::to_bgr_mat`] convert at the edges).
//!
//! In `--dump` output a frame is a summary `{"format": "SRGB", "width": 640, "height": 480}`,
//! never its pixels; reading that summary back gives a black frame of that size.

use std::fmt;
use std::sync::Arc;

use opencv::boxed_ref::{BoxedRef, BoxedRefMut};
use opencv::core::{Mat, Vec3b, Vec4b, CV_8UC1, CV_8UC3, CV_8UC4};
use opencv::imgproc;
use opencv::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::CvContext;
use crate::Result;

/// The largest image accepted, in pixels (16384 x 16384): guards against absurd allocations
/// from a corrupt header or a hand-written summary.
pub const MAX_PIXELS: u64 = 16384 * 16384;

/// The pixel format of an [`ImageFrame`] (MediaPipe's `ImageFormat` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ImageFormat {
    /// 8-bit R, G, B.
    #[serde(rename = "SRGB")]
    Srgb,
    /// 8-bit R, G, B, A.
    #[serde(rename = "SRGBA")]
    Srgba,
    /// 8-bit luminance.
    #[serde(rename = "GRAY8")]
    Gray8,
}

impl ImageFormat {
    /// Bytes (channels) per pixel.
    pub const fn channels(self) -> usize {
        match self {
            ImageFormat::Srgb => 3,
            ImageFormat::Srgba => 4,
            ImageFormat::Gray8 => 1,
        }
    }

    /// The OpenCV `Mat` type of this format (`CV_8UC3`, `CV_8UC4`, `CV_8UC1`).
    pub const fn cv_type(self) -> i32 {
        match self {
            ImageFormat::Srgb => CV_8UC3,
            ImageFormat::Srgba => CV_8UC4,
            ImageFormat::Gray8 => CV_8UC1,
        }
    }

    /// The format's name as written in configs and dumps.
    pub const fn name(self) -> &'static str {
        match self {
            ImageFormat::Srgb => "SRGB",
            ImageFormat::Srgba => "SRGBA",
            ImageFormat::Gray8 => "GRAY8",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An 8-bit image with shared, copy-on-write pixels. See the module docs.
///
/// ```
/// use mediagraph_calculators::image::{ImageFormat, ImageFrame};
/// let mut a = ImageFrame::new(ImageFormat::Srgb, 4, 2).unwrap();
/// let b = a.clone(); // shares the pixels
/// assert!(a.shares_pixels_with(&b));
/// a.pixels_mut()[0] = 255; // copies once, since `b` still holds the old pixels
/// assert!(!a.shares_pixels_with(&b));
/// assert_eq!(a.pixel(0, 0), Some(&[255, 0, 0][..]));
/// assert_eq!(b.pixel(0, 0), Some(&[0, 0, 0][..]));
/// ```
#[derive(Clone)]
pub struct ImageFrame {
    format: ImageFormat,
    width: u32,
    height: u32,
    pixels: Arc<Vec<u8>>,
}

fn image_error(message: impl Into<String>) -> mediagraph_framework::Error {
    crate::Error::Image(message.into()).into()
}

/// The byte length of a `format` image of `width` x `height`, checking the limits.
fn byte_len(format: ImageFormat, width: u32, height: u32) -> Result<usize> {
    if width == 0 || height == 0 {
        return Err(image_error(format!(
            "an image must not be empty (got {width}x{height})"
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS {
        return Err(image_error(format!(
            "{width}x{height} is larger than the limit of {MAX_PIXELS} pixels"
        )));
    }
    usize::try_from(pixels * format.channels() as u64)
        .map_err(|_| image_error(format!("{width}x{height} does not fit in memory")))
}

/// `mat`'s size as `(width, height)`, for 2-D mats with positive sizes.
fn mat_size(mat: &impl MatTraitConst) -> Result<(u32, u32)> {
    let (cols, rows) = (mat.cols(), mat.rows());
    if mat.dims() != 2 || cols <= 0 || rows <= 0 {
        return Err(image_error(format!(
            "expected a non-empty 2-D Mat, got {} dims, {cols}x{rows}",
            mat.dims()
        )));
    }
    Ok((cols as u32, rows as u32))
}

impl ImageFrame {
    /// A black (all zero) image.
    pub fn new(format: ImageFormat, width: u32, height: u32) -> Result<ImageFrame> {
        let len = byte_len(format, width, height)?;
        Ok(ImageFrame {
            format,
            width,
            height,
            pixels: Arc::new(vec![0; len]),
        })
    }

    /// An image over `pixels` (tightly packed rows); an error if the length does not match.
    pub fn from_pixels(
        format: ImageFormat,
        width: u32,
        height: u32,
        pixels: Vec<u8>,
    ) -> Result<ImageFrame> {
        let len = byte_len(format, width, height)?;
        if pixels.len() != len {
            return Err(image_error(format!(
                "{format} {width}x{height} needs {len} bytes, got {}",
                pixels.len()
            )));
        }
        Ok(ImageFrame {
            format,
            width,
            height,
            pixels: Arc::new(pixels),
        })
    }

    /// A copy of `mat`, whose type must be `format`'s (`CV_8UC3` for SRGB, ...); the channels
    /// are taken as they are (use [`ImageFrame::from_bgr_mat`] for OpenCV's BGR images).
    pub fn from_mat(mat: &impl MatTraitConst, format: ImageFormat) -> Result<ImageFrame> {
        let (width, height) = mat_size(mat)?;
        if mat.typ() != format.cv_type() {
            return Err(image_error(format!(
                "Mat of type {} cannot be read as {format}",
                mat.typ()
            )));
        }
        let mut out = ImageFrame::new(format, width, height)?;
        out.edit("copy Mat into ImageFrame", |dst| mat.copy_to(dst))?;
        Ok(out)
    }

    /// An image from an OpenCV image in OpenCV's channel order: BGR (`CV_8UC3`) becomes SRGB,
    /// BGRA (`CV_8UC4`) becomes SRGBA, `CV_8UC1` becomes GRAY8. One pass, one copy.
    pub fn from_bgr_mat(
        mat: &(impl MatTraitConst + opencv::core::ToInputArray),
    ) -> Result<ImageFrame> {
        let (width, height) = mat_size(mat)?;
        let (format, code) = match mat.typ() {
            t if t == CV_8UC3 => (ImageFormat::Srgb, Some(imgproc::COLOR_BGR2RGB)),
            t if t == CV_8UC4 => (ImageFormat::Srgba, Some(imgproc::COLOR_BGRA2RGBA)),
            t if t == CV_8UC1 => (ImageFormat::Gray8, None),
            t => {
                return Err(image_error(format!(
                    "Mat of type {t} is not an 8-bit BGR, BGRA or gray image"
                )))
            }
        };
        let mut out = ImageFrame::new(format, width, height)?;
        match code {
            Some(code) => out.edit("convert BGR Mat to ImageFrame", |dst| {
                imgproc::cvt_color(mat, dst, code, 0)
            })?,
            None => out.edit("copy Mat into ImageFrame", |dst| mat.copy_to(dst))?,
        }
        Ok(out)
    }

    /// A new 3-channel BGR `Mat` with this image's content (alpha dropped, gray expanded), as
    /// OpenCV's writers and windows expect.
    pub fn to_bgr_mat(&self) -> Result<Mat> {
        let src = self.mat()?;
        let code = match self.format {
            ImageFormat::Srgb => imgproc::COLOR_RGB2BGR,
            ImageFormat::Srgba => imgproc::COLOR_RGBA2BGR,
            ImageFormat::Gray8 => imgproc::COLOR_GRAY2BGR,
        };
        let mut out = Mat::default();
        imgproc::cvt_color(&src, &mut out, code, 0).cv("convert ImageFrame to BGR")?;
        Ok(out)
    }

    /// This image in another format (a copy; a clone if the format is the same).
    pub fn convert(&self, format: ImageFormat) -> Result<ImageFrame> {
        use ImageFormat::*;
        let code = match (self.format, format) {
            (Srgb, Srgb) | (Srgba, Srgba) | (Gray8, Gray8) => return Ok(self.clone()),
            (Srgb, Srgba) => imgproc::COLOR_RGB2RGBA,
            (Srgb, Gray8) => imgproc::COLOR_RGB2GRAY,
            (Srgba, Srgb) => imgproc::COLOR_RGBA2RGB,
            (Srgba, Gray8) => imgproc::COLOR_RGBA2GRAY,
            (Gray8, Srgb) => imgproc::COLOR_GRAY2RGB,
            (Gray8, Srgba) => imgproc::COLOR_GRAY2RGBA,
        };
        let src = self.mat()?;
        let mut out = ImageFrame::new(format, self.width, self.height)?;
        out.edit("convert ImageFrame format", |dst| {
            imgproc::cvt_color(&src, dst, code, 0)
        })?;
        Ok(out)
    }

    /// The pixel format.
    pub fn format(&self) -> ImageFormat {
        self.format
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Bytes per pixel.
    pub fn channels(&self) -> usize {
        self.format.channels()
    }

    /// Bytes per row (rows are tightly packed).
    pub fn row_bytes(&self) -> usize {
        self.width as usize * self.channels()
    }

    /// All pixels, row after row.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The pixels, for writing: copies them first if another frame shares them.
    pub fn pixels_mut(&mut self) -> &mut [u8] {
        Arc::make_mut(&mut self.pixels).as_mut_slice()
    }

    /// The channels of pixel (`x`, `y`), or `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<&[u8]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let c = self.channels();
        let start = y as usize * self.row_bytes() + x as usize * c;
        self.pixels.get(start..start + c)
    }

    /// True if both frames share one pixel buffer (no copy was made between them).
    pub fn shares_pixels_with(&self, other: &ImageFrame) -> bool {
        Arc::ptr_eq(&self.pixels, &other.pixels)
    }

    /// A read-only OpenCV `Mat` over this image's pixels (no copy).
    pub fn mat(&self) -> Result<BoxedRef<'_, Mat>> {
        let (rows, cols) = (self.height as i32, self.width as i32);
        let bytes = self.pixels.as_slice();
        match self.format {
            ImageFormat::Srgb => Mat::new_rows_cols_with_bytes::<Vec3b>(rows, cols, bytes),
            ImageFormat::Srgba => Mat::new_rows_cols_with_bytes::<Vec4b>(rows, cols, bytes),
            ImageFormat::Gray8 => Mat::new_rows_cols_with_bytes::<u8>(rows, cols, bytes),
        }
        .cv("view ImageFrame as Mat")
    }

    /// A writable OpenCV `Mat` over this image's pixels (copies them first if another frame
    /// shares them). OpenCV functions that (re)allocate their output must not be given this
    /// `Mat` as output unless size and type already match; prefer [`ImageFrame::edit`].
    pub fn mat_mut(&mut self) -> Result<BoxedRefMut<'_, Mat>> {
        let (rows, cols) = (self.height as i32, self.width as i32);
        let format = self.format;
        let bytes = Arc::make_mut(&mut self.pixels).as_mut_slice();
        match format {
            ImageFormat::Srgb => Mat::new_rows_cols_with_bytes_mut::<Vec3b>(rows, cols, bytes),
            ImageFormat::Srgba => Mat::new_rows_cols_with_bytes_mut::<Vec4b>(rows, cols, bytes),
            ImageFormat::Gray8 => Mat::new_rows_cols_with_bytes_mut::<u8>(rows, cols, bytes),
        }
        .cv("view ImageFrame as mutable Mat")
    }

    /// Runs `f` on a writable `Mat` over this image's pixels (see [`ImageFrame::mat_mut`]) and
    /// checks that OpenCV wrote into them rather than into a buffer of its own (which happens
    /// when an output's size or type does not match); `what` names the operation in errors.
    pub fn edit<R>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut BoxedRefMut<'_, Mat>) -> opencv::Result<R>,
    ) -> Result<R> {
        let mut mat = self.mat_mut()?;
        let before = mat.data();
        let result = f(&mut mat).cv(what)?;
        if mat.data() != before {
            return Err(image_error(format!(
                "{what}: OpenCV reallocated the output instead of writing into the frame (size or type mismatch)"
            )));
        }
        Ok(result)
    }
}

impl PartialEq for ImageFrame {
    fn eq(&self, other: &ImageFrame) -> bool {
        self.format == other.format
            && self.width == other.width
            && self.height == other.height
            && (self.shares_pixels_with(other) || self.pixels == other.pixels)
    }
}

impl fmt::Debug for ImageFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ImageFrame({} {}x{})",
            self.format, self.width, self.height
        )
    }
}

/// What a frame looks like in dumps.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageSummary {
    format: ImageFormat,
    width: u32,
    height: u32,
}

impl Serialize for ImageFrame {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        ImageSummary {
            format: self.format,
            width: self.width,
            height: self.height,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ImageFrame {
    /// A black frame of the summary's format and size.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<ImageFrame, D::Error> {
        let s = ImageSummary::deserialize(d)?;
        ImageFrame::new(s.format, s.width, s.height).map_err(serde::de::Error::custom)
    }
}

mediagraph_framework::register_packet_type!(ImageFrame, "ImageFrame");

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{Scalar, CV_8UC2};

    fn gradient(format: ImageFormat, w: u32, h: u32) -> ImageFrame {
        let len = (w * h) as usize * format.channels();
        let pixels = (0..len).map(|i| (i % 251) as u8).collect();
        ImageFrame::from_pixels(format, w, h, pixels).unwrap()
    }

    #[test]
    fn mat_view_shares_pixels() {
        let img = gradient(ImageFormat::Srgb, 5, 3);
        let mat = img.mat().unwrap();
        assert_eq!((mat.cols(), mat.rows(), mat.typ()), (5, 3, CV_8UC3));
        assert_eq!(mat.data(), img.pixels().as_ptr());
        let v = *mat.at_2d::<Vec3b>(2, 4).unwrap();
        assert_eq!(&v.0[..], img.pixel(4, 2).unwrap());
    }

    #[test]
    fn edit_is_copy_on_write() {
        let original = gradient(ImageFormat::Gray8, 8, 8);
        let mut edited = original.clone();
        assert!(edited.shares_pixels_with(&original));
        edited
            .edit("fill", |m| m.set_to_def(&Scalar::all(7.0)).map(|_| ()))
            .unwrap();
        assert!(!edited.shares_pixels_with(&original));
        assert!(edited.pixels().iter().all(|&p| p == 7));
        assert_eq!(original, gradient(ImageFormat::Gray8, 8, 8));
    }

    #[test]
    fn edit_detects_reallocated_output() {
        let mut img = ImageFrame::new(ImageFormat::Srgb, 4, 4).unwrap();
        let big = Mat::new_rows_cols_with_default(8, 8, CV_8UC3, Scalar::all(1.0)).unwrap();
        let err = img
            .edit("copy", |m| big.copy_to(m))
            .unwrap_err()
            .to_string();
        assert!(err.contains("reallocated"), "{err}");
    }

    #[test]
    fn bgr_round_trip_swaps_channels() {
        let mut bgr =
            Mat::new_rows_cols_with_default(2, 3, CV_8UC3, Scalar::new(10.0, 20.0, 30.0, 0.0))
                .unwrap();
        *bgr.at_2d_mut::<Vec3b>(1, 2).unwrap() = Vec3b::from([1, 2, 3]);
        let img = ImageFrame::from_bgr_mat(&bgr).unwrap();
        assert_eq!(img.format(), ImageFormat::Srgb);
        assert_eq!(img.pixel(0, 0), Some(&[30, 20, 10][..]));
        assert_eq!(img.pixel(2, 1), Some(&[3, 2, 1][..]));
        let back = img.to_bgr_mat().unwrap();
        assert_eq!(*back.at_2d::<Vec3b>(1, 2).unwrap(), Vec3b::from([1, 2, 3]));
        let copy = ImageFrame::from_mat(&back, ImageFormat::Srgb).unwrap();
        assert_eq!(copy.pixel(2, 1), Some(&[1, 2, 3][..]));
    }

    #[test]
    fn conversions_between_formats() {
        let img = gradient(ImageFormat::Srgb, 4, 4);
        let rgba = img.convert(ImageFormat::Srgba).unwrap();
        assert_eq!(rgba.channels(), 4);
        assert_eq!(rgba.pixel(1, 1).unwrap()[..3], *img.pixel(1, 1).unwrap());
        assert_eq!(rgba.pixel(1, 1).unwrap()[3], 255);
        let gray = rgba.convert(ImageFormat::Gray8).unwrap();
        assert_eq!(gray.pixels().len(), 16);
        assert!(img
            .convert(ImageFormat::Srgb)
            .unwrap()
            .shares_pixels_with(&img));
    }

    #[test]
    fn bad_sizes_and_types_are_errors() {
        assert!(ImageFrame::new(ImageFormat::Srgb, 0, 4).is_err());
        assert!(ImageFrame::new(ImageFormat::Srgb, 100_000, 100_000).is_err());
        let err = ImageFrame::from_pixels(ImageFormat::Srgb, 2, 2, vec![0; 11])
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs 12 bytes, got 11"), "{err}");
        let two = Mat::new_rows_cols_with_default(2, 2, CV_8UC2, Scalar::all(0.0)).unwrap();
        assert!(ImageFrame::from_bgr_mat(&two).is_err());
        assert!(ImageFrame::from_mat(&two, ImageFormat::Srgb).is_err());
        assert!(ImageFrame::from_bgr_mat(&Mat::default()).is_err());
    }

    #[test]
    fn serializes_as_a_summary() {
        let img = gradient(ImageFormat::Srgba, 7, 5);
        let json = serde_json::to_value(&img).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"format": "SRGBA", "width": 7, "height": 5})
        );
        let back: ImageFrame = serde_json::from_value(json).unwrap();
        assert_eq!((back.width(), back.height()), (7, 5));
        assert!(back.pixels().iter().all(|&p| p == 0));
        assert!(serde_json::from_value::<ImageFrame>(
            serde_json::json!({"format": "SRGB", "width": 0, "height": 5})
        )
        .is_err());
    }
}
