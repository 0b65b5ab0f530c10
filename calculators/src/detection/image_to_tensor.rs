//! `ImageToTensorCalculator`: an image resized (stretched) to a model's input size, scaled to
//! a float range and laid out as NHWC or NCHW; plus the plain function [`image_to_tensor`].

use mediagraph_framework::prelude::*;
use opencv::core::{Mat, Size};
use opencv::imgproc;
use opencv::prelude::*;
use serde::Deserialize;

use super::Tensor;
use crate::image::{CvContext, ImageFormat, ImageFrame};

/// Memory layout of an image tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum TensorLayout {
    /// `[1, height, width, channels]` (TFLite's, MediaPipe's).
    #[default]
    #[serde(rename = "NHWC")]
    Nhwc,
    /// `[1, channels, height, width]` (most ONNX models').
    #[serde(rename = "NCHW")]
    Nchw,
}

/// The value range pixel values 0..255 are mapped to, linearly.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloatRange {
    /// The value of a 0 pixel.
    pub min: f32,
    /// The value of a 255 pixel.
    pub max: f32,
}

impl Default for FloatRange {
    fn default() -> Self {
        FloatRange { min: 0.0, max: 1.0 }
    }
}

/// Options of [`ImageToTensorCalculator`] (MediaPipe's `ImageToTensorCalculatorOptions`
/// fields of the same names; `tensor_layout` is ours).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageToTensorCalculatorOptions {
    /// Tensor width in pixels (required).
    pub output_tensor_width: u32,
    /// Tensor height in pixels (required).
    pub output_tensor_height: u32,
    /// Values of pixel 0 and 255 (default `{min: 0, max: 1}`; `{min: -1, max: 1}` gives
    /// `px / 127.5 - 1`).
    pub output_tensor_float_range: FloatRange,
    /// `NHWC` (default) or `NCHW`.
    pub tensor_layout: TensorLayout,
}

impl Default for ImageToTensorCalculatorOptions {
    fn default() -> Self {
        ImageToTensorCalculatorOptions {
            output_tensor_width: 0,
            output_tensor_height: 0,
            output_tensor_float_range: FloatRange::default(),
            tensor_layout: TensorLayout::Nhwc,
        }
    }
}

/// The largest tensor side accepted.
const MAX_SIDE: u32 = 8192;

impl ImageToTensorCalculatorOptions {
    fn check(&self) -> std::result::Result<(), String> {
        let (w, h) = (self.output_tensor_width, self.output_tensor_height);
        if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
            return Err(format!(
                "output_tensor_width and output_tensor_height must be 1..={MAX_SIDE} (got {w}x{h})"
            ));
        }
        let r = self.output_tensor_float_range;
        if !(r.min.is_finite() && r.max.is_finite() && r.min < r.max) {
            return Err(format!(
                "output_tensor_float_range needs finite min < max (got {{min: {}, max: {}}})",
                r.min, r.max
            ));
        }
        Ok(())
    }
}

/// Converts `frame` to a tensor of `[1, h, w, c]` (NHWC) or `[1, c, h, w]` (NCHW): the whole
/// frame stretched to `output_tensor_width` x `output_tensor_height` (bilinear), each value
/// `min + px * (max - min) / 255`. SRGB gives 3 channels (R, G, B), SRGBA 3 (alpha dropped),
/// GRAY8 1.
pub fn image_to_tensor(
    frame: &ImageFrame,
    options: &ImageToTensorCalculatorOptions,
) -> Result<Tensor> {
    options
        .check()
        .map_err(|m| Error::from(crate::Error::Image(m)))?;
    let (w, h) = (
        options.output_tensor_width as usize,
        options.output_tensor_height as usize,
    );
    let src = frame.mat()?;
    let resized: Mat;
    let pixels: &[u8] = if (frame.width() as usize, frame.height() as usize) == (w, h) {
        frame.pixels()
    } else {
        let mut m = Mat::default();
        imgproc::resize(
            &src,
            &mut m,
            Size::new(w as i32, h as i32),
            0.0,
            0.0,
            imgproc::INTER_LINEAR,
        )
        .cv("resize to the tensor size")?;
        resized = m;
        resized.data_bytes().cv("resized pixels")?
    };
    let in_ch = frame.format().channels();
    let out_ch = match frame.format() {
        ImageFormat::Srgb | ImageFormat::Srgba => 3,
        ImageFormat::Gray8 => 1,
    };
    if pixels.len() != w * h * in_ch {
        return Err(crate::Error::Image(format!(
            "resized image has {} bytes, expected {}",
            pixels.len(),
            w * h * in_ch
        ))
        .into());
    }
    let FloatRange { min, max } = options.output_tensor_float_range;
    let scale = (max - min) / 255.0;
    let lut: Vec<f32> = (0..=255u8).map(|v| min + f32::from(v) * scale).collect();
    let mut data = vec![0f32; w * h * out_ch];
    match options.tensor_layout {
        TensorLayout::Nhwc => {
            for (px, out) in pixels
                .chunks_exact(in_ch)
                .zip(data.chunks_exact_mut(out_ch))
            {
                for (o, &v) in out.iter_mut().zip(px) {
                    *o = lut[usize::from(v)];
                }
            }
        }
        TensorLayout::Nchw => {
            let plane = w * h;
            for (i, px) in pixels.chunks_exact(in_ch).enumerate() {
                for (c, &v) in px.iter().take(out_ch).enumerate() {
                    data[c * plane + i] = lut[usize::from(v)];
                }
            }
        }
    }
    let shape = match options.tensor_layout {
        TensorLayout::Nhwc => vec![1, h, w, out_ch],
        TensorLayout::Nchw => vec![1, out_ch, h, w],
    };
    Tensor::new(shape, data)
}

/// Converts images to model input tensors (MediaPipe's `ImageToTensorCalculator`, CPU, whole
/// image, no rotation or letterbox).
///
/// * Input streams: `IMAGE` ([`ImageFrame`]).
/// * Output streams: `TENSORS` (`Vec<`[`Tensor`]`>` with one tensor, see [`image_to_tensor`]).
/// * Options ([`ImageToTensorCalculatorOptions`]): `output_tensor_width`,
///   `output_tensor_height`, `output_tensor_float_range: {min, max}`, `tensor_layout`
///   (`NHWC` or `NCHW`).
///
/// The aspect ratio is not kept (the frame is stretched), as the SSD detectors expect; boxes
/// found on the tensor are therefore already relative to the frame.
///
/// ```yaml
/// - calculator: ImageToTensorCalculator
///   input_stream: ["IMAGE:frames"]
///   output_stream: ["TENSORS:input_tensors"]
///   options:
///     output_tensor_width: 300
///     output_tensor_height: 300
///     output_tensor_float_range: {min: -1.0, max: 1.0}
///     tensor_layout: NCHW
/// ```
pub struct ImageToTensorCalculator {
    options: ImageToTensorCalculatorOptions,
}

const IMAGE: Input<ImageFrame> = Input::new("IMAGE");
const TENSORS: Output<Vec<Tensor>> = Output::new("TENSORS");

impl Calculator for ImageToTensorCalculator {
    type Options = ImageToTensorCalculatorOptions;

    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()> {
        cc.declare(&[&IMAGE, &TENSORS])?;
        if let Err(message) = options.check() {
            return Err(cc.error(crate::Error::Config {
                calculator: "ImageToTensorCalculator",
                message,
            }));
        }
        cc.set_timestamp_offset(0);
        cc.set_independent_calls(true);
        Ok(())
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(ImageToTensorCalculator {
            options: options.clone(),
        })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let Some(frame) = cx.input(&IMAGE).get()? else {
            return Ok(Flow::Continue);
        };
        let tensor = image_to_tensor(frame, &self.options)?;
        let ts = cx.input_timestamp();
        cx.output(&TENSORS).send(vec![tensor], ts)?;
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(ImageToTensorCalculator, "ImageToTensorCalculator");

#[cfg(test)]
mod tests {
    use super::*;

    fn options(
        w: u32,
        h: u32,
        layout: TensorLayout,
        min: f32,
        max: f32,
    ) -> ImageToTensorCalculatorOptions {
        ImageToTensorCalculatorOptions {
            output_tensor_width: w,
            output_tensor_height: h,
            output_tensor_float_range: FloatRange { min, max },
            tensor_layout: layout,
        }
    }

    /// A 2x2 RGB image: red, green / blue, white.
    fn tiny() -> ImageFrame {
        let px = vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255];
        ImageFrame::from_pixels(ImageFormat::Srgb, 2, 2, px).unwrap()
    }

    #[test]
    fn same_size_nhwc_and_nchw_exact_values() {
        let f = tiny();
        let t = image_to_tensor(&f, &options(2, 2, TensorLayout::Nhwc, -1.0, 1.0)).unwrap();
        assert_eq!(t.shape(), &[1, 2, 2, 3]);
        let (a, b) = (1.0, -1.0);
        assert_eq!(t.data(), &[a, b, b, b, a, b, b, b, a, a, a, a]);
        let t = image_to_tensor(&f, &options(2, 2, TensorLayout::Nchw, 0.0, 1.0)).unwrap();
        assert_eq!(t.shape(), &[1, 3, 2, 2]);
        // R plane, G plane, B plane.
        assert_eq!(
            t.data(),
            &[1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]
        );
    }

    #[test]
    fn normalization_maps_pixel_values_linearly() {
        let f = ImageFrame::from_pixels(ImageFormat::Gray8, 3, 1, vec![0, 51, 255]).unwrap();
        let t = image_to_tensor(&f, &options(3, 1, TensorLayout::Nhwc, -1.0, 1.0)).unwrap();
        assert_eq!(t.shape(), &[1, 1, 3, 1]);
        let d = t.data();
        assert_eq!(d[0], -1.0);
        assert!((d[1] - (51.0 / 127.5 - 1.0)).abs() < 1e-6);
        assert_eq!(d[2], 1.0);
    }

    #[test]
    fn resize_stretches_and_alpha_is_dropped() {
        // A uniform 4x2 RGBA image: any resize keeps the value.
        let px = [10u8, 20, 30, 99].repeat(8);
        let f = ImageFrame::from_pixels(ImageFormat::Srgba, 4, 2, px).unwrap();
        let t = image_to_tensor(&f, &options(3, 5, TensorLayout::Nchw, 0.0, 255.0)).unwrap();
        assert_eq!(t.shape(), &[1, 3, 5, 3]);
        let plane = 15;
        assert!(t.data()[..plane].iter().all(|&v| v == 10.0));
        assert!(t.data()[plane..2 * plane].iter().all(|&v| v == 20.0));
        assert!(t.data()[2 * plane..].iter().all(|&v| v == 30.0));
        // Downscaling 2x1 -> 1x1 averages (bilinear at the center).
        let f = ImageFrame::from_pixels(ImageFormat::Gray8, 2, 1, vec![0, 200]).unwrap();
        let t = image_to_tensor(&f, &options(1, 1, TensorLayout::Nhwc, 0.0, 255.0)).unwrap();
        assert_eq!(t.data(), &[100.0]);
    }

    #[test]
    fn bad_options_are_rejected() {
        let f = tiny();
        let err = image_to_tensor(&f, &options(0, 2, TensorLayout::Nhwc, 0.0, 1.0)).unwrap_err();
        assert!(err.to_string().contains("output_tensor_width"), "{err}");
        let err = image_to_tensor(&f, &options(2, 2, TensorLayout::Nhwc, 1.0, 1.0)).unwrap_err();
        assert!(err.to_string().contains("min < max"), "{err}");
        let text = crate::test_util::config_error(
            "input_stream: [f]\nnode:\n  - calculator: ImageToTensorCalculator\n    input_stream: IMAGE:f\n    output_stream: TENSORS:t\n",
        );
        assert!(text.contains("output_tensor_width"), "{text}");
    }
}
