//! Video in and out through OpenCV.
//!
//! * [`OpenCvVideoDecoderCalculator`]: a video file to a stream of [`ImageFrame`]s, plus its
//!   [`VideoHeader`]; [`probe`] reads the header alone.
//! * [`OpenCvVideoEncoderCalculator`]: a stream of frames to a video file (mp4, avi, ...).
//! * [`CameraSourceCalculator`]: frames from a camera.
//! * [`DisplaySinkCalculator`]: frames to a desktop window.
//!
//! [`ImageFrame`]: crate::image::ImageFrame
//! [`VideoHeader`]: crate::VideoHeader

pub mod camera;
pub mod decoder;
pub mod display;
pub mod encoder;

pub use camera::{CameraSourceCalculator, CameraSourceCalculatorOptions, OnLost};
pub use decoder::{
    probe, DecodeReport, OnError, OpenCvVideoDecoderCalculator, OpenCvVideoDecoderCalculatorOptions,
};
pub use display::{DisplaySinkCalculator, DisplaySinkCalculatorOptions};
pub use encoder::{OpenCvVideoEncoderCalculator, OpenCvVideoEncoderCalculatorOptions};
