//! `ImageTransformationCalculator`: rotate, flip and resize frames.

use mediagraph_framework::prelude::*;
use opencv::core::{self as cv, Mat, Rect, Scalar, Size};
use opencv::imgproc;
use opencv::prelude::*;
use serde::Deserialize;

use super::annotation::Color;
use super::{CvContext, ImageFrame};
use crate::VideoHeader;

/// Rotates, flips and resizes frames (MediaPipe's calculator of this name, CPU path).
///
/// * Input streams: `IMAGE` ([`ImageFrame`]); optional `ROTATION_DEGREES` (i32: 0, 90, 180 or
///   270, counterclockwise), which overrides `rotation_mode` at its timestamp.
/// * Output streams: `IMAGE` ([`ImageFrame`], same format); optional `LETTERBOX_PADDING`
///   (`[f32; 4]`: left, top, right, bottom padding as fractions of the output size; non-zero
///   only in `FIT` mode), so boxes found on the output can be mapped back to the input.
/// * Options ([`ImageTransformationCalculatorOptions`]): `rotation_mode`, `flip_horizontally`,
///   `flip_vertically`, `output_width`, `output_height`, `scale_mode`, `constant_padding`,
///   `padding_color`, `interpolation_mode`.
///
/// Order: rotate, then flip, then scale to `output_width` x `output_height` (the size of the
/// output frame). With neither size set the rotated size is kept; with one set the other
/// follows the aspect ratio. A frame that needs no change is passed on without a copy. The
/// `IMAGE` stream header is passed on (a [`VideoHeader`] with the output size).
///
/// ```yaml
/// - calculator: ImageTransformationCalculator
///   input_stream: ["IMAGE:frames"]
///   output_stream: ["IMAGE:small", "LETTERBOX_PADDING:padding"]
///   options: {output_width: 320, output_height: 320, scale_mode: FIT}
/// ```
pub struct ImageTransformationCalculator {
    options: ImageTransformationCalculatorOptions,
}

/// How the image is fitted to the output size (MediaPipe's `ScaleMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum ScaleMode {
    /// Same as `STRETCH`.
    #[serde(rename = "DEFAULT")]
    Default,
    /// Scale each axis independently to fill the output (aspect ratio not kept). The default.
    #[default]
    #[serde(rename = "STRETCH")]
    Stretch,
    /// Scale uniformly to fit inside the output, padding the rest (letterbox).
    #[serde(rename = "FIT")]
    Fit,
    /// Scale uniformly to cover the output, cropping the overflow around the center.
    #[serde(rename = "FILL_AND_CROP", alias = "FILL")]
    FillAndCrop,
}

/// Counterclockwise rotation (MediaPipe's `RotationMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum RotationMode {
    /// No rotation.
    #[default]
    #[serde(rename = "ROTATION_0", alias = "UNKNOWN")]
    Rotation0,
    /// 90 degrees.
    #[serde(rename = "ROTATION_90")]
    Rotation90,
    /// 180 degrees.
    #[serde(rename = "ROTATION_180")]
    Rotation180,
    /// 270 degrees.
    #[serde(rename = "ROTATION_270")]
    Rotation270,
}

impl RotationMode {
    /// The mode for `degrees` (0, 90, 180, 270, also negative or beyond 360 in steps of 90).
    pub fn from_degrees(degrees: i32) -> Option<RotationMode> {
        match degrees.rem_euclid(360) {
            0 => Some(RotationMode::Rotation0),
            90 => Some(RotationMode::Rotation90),
            180 => Some(RotationMode::Rotation180),
            270 => Some(RotationMode::Rotation270),
            _ => None,
        }
    }
}

/// Resampling filter (MediaPipe's `InterpolationMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InterpolationMode {
    /// Area averaging when shrinking, bilinear when enlarging. Shrinking by more than 2x is
    /// done by halving (averaging pixel pairs) while the size stays even and at least the
    /// target, then bilinearly by the rest (less than 2x): 768x576 to 320x240 is 384x288,
    /// then 1.2x. The same anti-aliasing as OpenCV's area filter (which MediaPipe uses) up
    /// to that last step, and 2-6x faster than it (`cargo bench --bench
    /// image_transformation`). An exact 2x2 shrink, odd sizes and factors under 2 use
    /// OpenCV's area filter.
    #[default]
    Default,
    /// Bilinear.
    Linear,
    /// Nearest neighbour.
    Nearest,
}

/// Options of [`ImageTransformationCalculator`] (MediaPipe's
/// `ImageTransformationCalculatorOptions`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageTransformationCalculatorOptions {
    /// Counterclockwise rotation (default `ROTATION_0`).
    pub rotation_mode: RotationMode,
    /// Mirror left-right (after rotating).
    pub flip_horizontally: bool,
    /// Mirror top-bottom (after rotating).
    pub flip_vertically: bool,
    /// Output width in pixels (0: from `output_height` and the aspect ratio, or unchanged).
    pub output_width: u32,
    /// Output height in pixels (0: from `output_width` and the aspect ratio, or unchanged).
    pub output_height: u32,
    /// How to fit the image to the output size (default `STRETCH`).
    pub scale_mode: ScaleMode,
    /// In `FIT` mode, pad with `padding_color` (true, the default) or by repeating the edge
    /// pixels (false).
    pub constant_padding: bool,
    /// Padding color in `FIT` mode (default black).
    pub padding_color: Color,
    /// Resampling filter.
    pub interpolation_mode: InterpolationMode,
}

impl Default for ImageTransformationCalculatorOptions {
    fn default() -> Self {
        ImageTransformationCalculatorOptions {
            rotation_mode: RotationMode::Rotation0,
            flip_horizontally: false,
            flip_vertically: false,
            output_width: 0,
            output_height: 0,
            scale_mode: ScaleMode::Stretch,
            constant_padding: true,
            padding_color: Color::BLACK,
            interpolation_mode: InterpolationMode::Default,
        }
    }
}

const IMAGE_IN: Input<ImageFrame> = Input::new("IMAGE");
const ROTATION_DEGREES: Input<i32> = Input::new("ROTATION_DEGREES").optional();
const IMAGE_OUT: Output<ImageFrame> = Output::new("IMAGE");
const LETTERBOX_PADDING: Output<[f32; 4]> = Output::new("LETTERBOX_PADDING").optional();

/// The largest output side accepted.
const MAX_SIDE: u32 = 16384;

impl Calculator for ImageTransformationCalculator {
    type Options = ImageTransformationCalculatorOptions;

    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()> {
        if options.output_width > MAX_SIDE || options.output_height > MAX_SIDE {
            return Err(cc.error(crate::Error::Config {
                calculator: "ImageTransformationCalculator",
                message: format!(
                    "output_width and output_height must be at most {MAX_SIDE} (got {}x{})",
                    options.output_width, options.output_height
                ),
            }));
        }
        cc.declare(&[&IMAGE_IN, &ROTATION_DEGREES, &IMAGE_OUT, &LETTERBOX_PADDING])?;
        cc.set_timestamp_offset(0);
        cc.set_independent_calls(true);
        Ok(())
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(ImageTransformationCalculator {
            options: options.clone(),
        })
    }

    /// Passes the `IMAGE` stream's header on; a [`VideoHeader`] gets the output size.
    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let Some(id) = cx.inputs().id(IMAGE_IN.tag(), 0) else {
            return Ok(());
        };
        let header = cx.input_header(id);
        if let Ok(video) = header.get::<VideoHeader>() {
            let mut video = video.clone();
            let (w, h) = match self.options.rotation_mode {
                RotationMode::Rotation90 | RotationMode::Rotation270 => (video.height, video.width),
                _ => (video.width, video.height),
            };
            if w > 0 && h > 0 {
                (video.width, video.height) = output_size(&self.options, w, h);
            }
            cx.output(&IMAGE_OUT).set_header(Packet::new(video))?;
        } else if !header.is_empty() {
            cx.output(&IMAGE_OUT).set_header(header.clone())?;
        }
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let Some(frame) = cx.input(&IMAGE_IN).get()? else {
            return Ok(Flow::Continue);
        };
        let rotation = match cx.input(&ROTATION_DEGREES).get()? {
            None => self.options.rotation_mode,
            Some(&d) => RotationMode::from_degrees(d).ok_or_else(|| {
                Error::from(crate::Error::Image(format!(
                    "ROTATION_DEGREES must be a multiple of 90, got {d}"
                )))
            })?,
        };
        let (out, padding) = transform(frame, &self.options, rotation)?;
        let ts = cx.input_timestamp();
        cx.output(&IMAGE_OUT).send(out, ts)?;
        if cx.output(&LETTERBOX_PADDING).is_connected() {
            cx.output(&LETTERBOX_PADDING).send(padding, ts)?;
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(
    ImageTransformationCalculator,
    "ImageTransformationCalculator"
);

/// The output size for an input of `w` x `h` (after rotation).
fn output_size(options: &ImageTransformationCalculatorOptions, w: u32, h: u32) -> (u32, u32) {
    let scaled = |num: u32, a: u32, b: u32| {
        ((f64::from(num) * f64::from(a) / f64::from(b)).round() as u32).clamp(1, MAX_SIDE)
    };
    match (options.output_width, options.output_height) {
        (0, 0) => (w, h),
        (ow, 0) => (ow, scaled(ow, h, w)),
        (0, oh) => (scaled(oh, w, h), oh),
        (ow, oh) => (ow, oh),
    }
}

/// Resizes `input` (`w` x `h`) to `to` as `mode` says (see [`InterpolationMode::Default`]).
fn resize(
    input: &impl cv::ToInputArray,
    dst: &mut impl cv::ToOutputArray,
    (w, h): (i32, i32),
    to: Size,
    mode: InterpolationMode,
) -> opencv::Result<()> {
    let shrinking = i64::from(to.width) * i64::from(to.height) < i64::from(w) * i64::from(h);
    let inter = match mode {
        InterpolationMode::Linear => imgproc::INTER_LINEAR,
        InterpolationMode::Nearest => imgproc::INTER_NEAREST,
        InterpolationMode::Default if shrinking => imgproc::INTER_AREA,
        InterpolationMode::Default => imgproc::INTER_LINEAR,
    };
    if inter == imgproc::INTER_AREA {
        // Halve each axis while it stays even and at least the target size: bilinear at
        // exactly 2x averages pixel pairs, as the area filter does, and is much faster than
        // OpenCV's area filter for any factor but 2x2.
        let halve = |n: i32, target: i32| {
            if n % 2 == 0 && n / 2 >= target {
                n / 2
            } else {
                n
            }
        };
        let mut sizes = vec![Size::new(w, h)];
        loop {
            let last = sizes[sizes.len() - 1];
            let next = Size::new(halve(last.width, to.width), halve(last.height, to.height));
            if next == last {
                break;
            }
            sizes.push(next);
        }
        let exact_2x2 = sizes.len() == 2 && sizes[1] == to;
        if sizes.len() > 1 && !exact_2x2 {
            let mut current = Mat::default();
            imgproc::resize(
                input,
                &mut current,
                sizes[1],
                0.0,
                0.0,
                imgproc::INTER_LINEAR,
            )?;
            for &size in &sizes[2..] {
                let mut next = Mat::default();
                imgproc::resize(&current, &mut next, size, 0.0, 0.0, imgproc::INTER_LINEAR)?;
                current = next;
            }
            return imgproc::resize(&current, dst, to, 0.0, 0.0, imgproc::INTER_LINEAR);
        }
    }
    imgproc::resize(input, dst, to, 0.0, 0.0, inter)
}

/// Applies rotation, flips and scaling; returns the frame and the letterbox padding.
pub(crate) fn transform(
    frame: &ImageFrame,
    options: &ImageTransformationCalculatorOptions,
    rotation: RotationMode,
) -> Result<(ImageFrame, [f32; 4])> {
    let flip = match (options.flip_horizontally, options.flip_vertically) {
        (false, false) => None,
        (true, false) => Some(1),
        (false, true) => Some(0),
        (true, true) => Some(-1),
    };
    let rotate = match rotation {
        RotationMode::Rotation0 => None,
        RotationMode::Rotation90 => Some(cv::ROTATE_90_COUNTERCLOCKWISE),
        RotationMode::Rotation180 => Some(cv::ROTATE_180),
        RotationMode::Rotation270 => Some(cv::ROTATE_90_CLOCKWISE),
    };

    // Rotate and flip into an intermediate Mat (only if needed).
    let src = frame.mat()?;
    let mut oriented: Option<Mat> = None;
    if let Some(code) = rotate {
        let mut m = Mat::default();
        cv::rotate(&src, &mut m, code).cv("rotate")?;
        oriented = Some(m);
    }
    if let Some(code) = flip {
        let mut m = Mat::default();
        match &oriented {
            Some(o) => cv::flip(o, &mut m, code),
            None => cv::flip(&src, &mut m, code),
        }
        .cv("flip")?;
        oriented = Some(m);
    }
    let (w, h) = match &oriented {
        Some(m) => (m.cols() as u32, m.rows() as u32),
        None => (frame.width(), frame.height()),
    };
    let (ow, oh) = output_size(options, w, h);
    let format = frame.format();

    if (ow, oh) == (w, h) {
        let out = match oriented {
            None => frame.clone(),
            Some(m) => ImageFrame::from_mat(&m, format)?,
        };
        return Ok((out, [0.0; 4]));
    }

    let out = match &oriented {
        Some(m) => scale(m, (w, h), (ow, oh), format, options)?,
        None => scale(&src, (w, h), (ow, oh), format, options)?,
    };
    Ok(out)
}

/// Scales `input` (`w` x `h`) to `ow` x `oh` as `options.scale_mode` says.
fn scale(
    input: &impl cv::ToInputArray,
    (w, h): (u32, u32),
    (ow, oh): (u32, u32),
    format: super::ImageFormat,
    options: &ImageTransformationCalculatorOptions,
) -> Result<(ImageFrame, [f32; 4])> {
    let mut out = ImageFrame::new(format, ow, oh)?;
    let (fw, fh) = (f64::from(ow) / f64::from(w), f64::from(oh) / f64::from(h));
    let mut padding = [0.0f32; 4];
    match options.scale_mode {
        ScaleMode::Default | ScaleMode::Stretch => {
            out.edit("resize", |dst| {
                let to = Size::new(ow as i32, oh as i32);
                resize(
                    input,
                    dst,
                    (w as i32, h as i32),
                    to,
                    options.interpolation_mode,
                )
            })?;
        }
        ScaleMode::Fit => {
            let f = fw.min(fh);
            let sw = ((f64::from(w) * f).round() as i32).clamp(1, ow as i32);
            let sh = ((f64::from(h) * f).round() as i32).clamp(1, oh as i32);
            let mut scaled = Mat::default();
            let (from, to) = ((w as i32, h as i32), Size::new(sw, sh));
            resize(input, &mut scaled, from, to, options.interpolation_mode).cv("resize")?;
            let left = (ow as i32 - sw) / 2;
            let top = (oh as i32 - sh) / 2;
            let right = ow as i32 - sw - left;
            let bottom = oh as i32 - sh - top;
            let c = options.padding_color;
            let color = match format.channels() {
                1 => Scalar::all(c.luma()),
                _ => Scalar::new(c.r.into(), c.g.into(), c.b.into(), 255.0),
            };
            let border = if options.constant_padding {
                cv::BORDER_CONSTANT
            } else {
                cv::BORDER_REPLICATE
            };
            out.edit("pad", |dst| {
                cv::copy_make_border(&scaled, dst, top, bottom, left, right, border, color)
            })?;
            padding = [
                left as f32 / ow as f32,
                top as f32 / oh as f32,
                right as f32 / ow as f32,
                bottom as f32 / oh as f32,
            ];
        }
        ScaleMode::FillAndCrop => {
            let f = fw.max(fh);
            let sw = ((f64::from(w) * f).round() as i32).max(ow as i32);
            let sh = ((f64::from(h) * f).round() as i32).max(oh as i32);
            let mut scaled = Mat::default();
            let (from, to) = ((w as i32, h as i32), Size::new(sw, sh));
            resize(input, &mut scaled, from, to, options.interpolation_mode).cv("resize")?;
            let crop = Rect::new(
                (sw - ow as i32) / 2,
                (sh - oh as i32) / 2,
                ow as i32,
                oh as i32,
            );
            let roi = scaled.roi(crop).cv("crop")?;
            out.edit("crop", |dst| roi.copy_to(dst))?;
        }
    }
    Ok((out, padding))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageFormat;

    /// A 4x2 SRGB image whose pixel (x, y) is (x, y, 7).
    fn coords() -> ImageFrame {
        let mut px = Vec::new();
        for y in 0..2u8 {
            for x in 0..4u8 {
                px.extend_from_slice(&[x, y, 7]);
            }
        }
        ImageFrame::from_pixels(ImageFormat::Srgb, 4, 2, px).unwrap()
    }

    fn opts(
        f: impl FnOnce(&mut ImageTransformationCalculatorOptions),
    ) -> ImageTransformationCalculatorOptions {
        let mut o = ImageTransformationCalculatorOptions::default();
        f(&mut o);
        o
    }

    #[test]
    fn identity_passes_the_same_pixels() {
        let img = coords();
        let (out, pad) = transform(&img, &opts(|_| {}), RotationMode::Rotation0).unwrap();
        assert!(out.shares_pixels_with(&img));
        assert_eq!(pad, [0.0; 4]);
    }

    #[test]
    fn rotates_counterclockwise_and_flips() {
        let img = coords();
        let (r90, _) = transform(&img, &opts(|_| {}), RotationMode::Rotation90).unwrap();
        assert_eq!((r90.width(), r90.height()), (2, 4));
        // Counterclockwise: the top-right input pixel (3, 0) lands at the top left.
        assert_eq!(r90.pixel(0, 0), Some(&[3, 0, 7][..]));
        let (r270, _) = transform(&img, &opts(|_| {}), RotationMode::Rotation270).unwrap();
        assert_eq!(r270.pixel(0, 0), Some(&[0, 1, 7][..]));
        let (fh, _) = transform(
            &img,
            &opts(|o| o.flip_horizontally = true),
            RotationMode::Rotation0,
        )
        .unwrap();
        assert_eq!(fh.pixel(0, 0), Some(&[3, 0, 7][..]));
        let (fv, _) = transform(
            &img,
            &opts(|o| o.flip_vertically = true),
            RotationMode::Rotation0,
        )
        .unwrap();
        assert_eq!(fv.pixel(0, 0), Some(&[0, 1, 7][..]));
    }

    /// A Gray8 image: `f(x, y)`.
    fn gray(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> ImageFrame {
        let px = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y));
        ImageFrame::from_pixels(ImageFormat::Gray8, w, h, px.collect()).unwrap()
    }

    fn shrink(img: &ImageFrame, mode: InterpolationMode) -> Vec<u8> {
        let o = opts(|o| {
            (o.output_width, o.output_height) = (320, 240);
            o.scale_mode = ScaleMode::Stretch;
            o.interpolation_mode = mode;
        });
        let (out, _) = transform(img, &o, RotationMode::Rotation0).unwrap();
        assert_eq!((out.width(), out.height()), (320, 240));
        out.pixels().to_vec()
    }

    #[test]
    fn shrinking_by_a_factor_that_is_not_2x2_still_averages_areas() {
        let spread = |px: &[u8]| px.iter().max().unwrap() - px.iter().min().unwrap();
        for (w, h) in [(768, 576), (640, 272), (1280, 720), (1920, 1080)] {
            // 1-pixel stripes: an area filter gives flat gray, bilinear sampling aliases them.
            let stripes = gray(w, h, |x, _| if x % 2 == 0 { 0 } else { 255 });
            let ours = shrink(&stripes, InterpolationMode::Default);
            assert!(spread(&ours) <= 2, "{w}x{h}: {}", spread(&ours));
            // A smooth image: within 1 level of OpenCV's (slow) general area filter.
            let smooth = gray(w, h, |x, y| {
                (x as f32 * 128.0 / w as f32 + y as f32 * 127.0 / h as f32) as u8
            });
            let ours = shrink(&smooth, InterpolationMode::Default);
            let mut exact = Mat::default();
            let (to, area) = (Size::new(320, 240), imgproc::INTER_AREA);
            imgproc::resize(&smooth.mat().unwrap(), &mut exact, to, 0.0, 0.0, area).unwrap();
            let exact = exact.data_bytes().unwrap();
            let worst = ours.iter().zip(exact).map(|(a, b)| a.abs_diff(*b)).max();
            assert!(worst <= Some(1), "{w}x{h}: {worst:?}");
        }
        let stripes = gray(768, 576, |x, _| if x % 2 == 0 { 0 } else { 255 });
        assert!(spread(&shrink(&stripes, InterpolationMode::Linear)) >= 100);
    }

    #[test]
    fn scale_modes() {
        let img = ImageFrame::new(ImageFormat::Srgb, 200, 100).unwrap();
        let (s, _) = transform(
            &img,
            &opts(|o| {
                o.output_width = 50;
                o.output_height = 50;
            }),
            RotationMode::Rotation0,
        )
        .unwrap();
        assert_eq!((s.width(), s.height()), (50, 50));

        let fit = opts(|o| {
            o.output_width = 100;
            o.output_height = 100;
            o.scale_mode = ScaleMode::Fit;
            o.padding_color = Color::rgb(9, 8, 7);
        });
        let (f, pad) = transform(&img, &fit, RotationMode::Rotation0).unwrap();
        assert_eq!((f.width(), f.height()), (100, 100));
        assert_eq!(pad, [0.0, 0.25, 0.0, 0.25]);
        assert_eq!(f.pixel(50, 10), Some(&[9, 8, 7][..]));
        assert_eq!(f.pixel(50, 50), Some(&[0, 0, 0][..]));

        let (c, pad) = transform(
            &img,
            &opts(|o| {
                o.output_width = 100;
                o.output_height = 100;
                o.scale_mode = ScaleMode::FillAndCrop;
            }),
            RotationMode::Rotation0,
        )
        .unwrap();
        assert_eq!((c.width(), c.height()), (100, 100));
        assert_eq!(pad, [0.0; 4]);

        let (a, _) = transform(
            &img,
            &opts(|o| o.output_width = 80),
            RotationMode::Rotation0,
        )
        .unwrap();
        assert_eq!((a.width(), a.height()), (80, 40));
    }

    #[test]
    fn option_names_match_mediapipe() {
        let o: ImageTransformationCalculatorOptions = serde_json::from_value(serde_json::json!({
            "rotation_mode": "ROTATION_90", "scale_mode": "FILL", "flip_horizontally": true,
            "output_width": 10, "output_height": 20, "interpolation_mode": "NEAREST",
            "padding_color": {"r": 1, "g": 2, "b": 3}
        }))
        .unwrap();
        assert_eq!(o.scale_mode, ScaleMode::FillAndCrop);
        assert_eq!(o.rotation_mode, RotationMode::Rotation90);
        assert!(
            serde_json::from_value::<ImageTransformationCalculatorOptions>(
                serde_json::json!({"scale": "FIT"})
            )
            .is_err()
        );
        assert_eq!(
            RotationMode::from_degrees(-90),
            Some(RotationMode::Rotation270)
        );
        assert_eq!(RotationMode::from_degrees(45), None);
    }
}
