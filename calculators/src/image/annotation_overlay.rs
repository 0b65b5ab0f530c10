//! `AnnotationOverlayCalculator`: draws annotations on frames.

use mediagraph_framework::prelude::*;
use opencv::core::{Point, Rect, Scalar, ToInputOutputArray};
use opencv::imgproc;
use serde::Deserialize;

use super::annotation::{
    Annotations, Color, LineAnnotation, PointAnnotation, RectAnnotation, RenderAnnotation,
    TextAnnotation,
};
use super::{ImageFormat, ImageFrame};

/// Draws [`Annotations`] on frames (our renderer; MediaPipe's calculator of this name draws
/// `RenderData`).
///
/// * Input streams: `IMAGE` ([`ImageFrame`]); any number of untagged [`Annotations`] streams
///   (as MediaPipe's render data streams are untagged), drawn in port order on the frame of
///   the same timestamp. A timestamp where an annotation stream has nothing draws nothing for
///   it.
/// * Output streams: `IMAGE` ([`ImageFrame`], same size and format). The input frame is not
///   changed: the output is a copy (made once, by copy on write) with the drawing. The
///   `IMAGE` stream header is passed on.
/// * Options ([`AnnotationOverlayCalculatorOptions`]): `annotations` drawn on every frame,
///   `draw_frame_info` (frame number and time, bottom left), `thickness`, `font_scale`.
///
/// Boxes get a label `"<label> <score> #<id>"` on a filled tab in the box color; a box with an
/// `id` and no `color` gets [`Color::for_id`], so a track keeps its color across frames.
/// Annotations with non-finite coordinates are skipped.
///
/// ```yaml
/// - calculator: AnnotationOverlayCalculator
///   input_stream: ["IMAGE:frames", detection_annotations, track_annotations]
///   output_stream: ["IMAGE:annotated"]
///   options:
///     draw_frame_info: true
///     annotations: [{type: rectangle, left: 0.4, top: 0.4, right: 0.6, bottom: 0.6, normalized: true}]
/// ```
pub struct AnnotationOverlayCalculator {
    options: AnnotationOverlayCalculatorOptions,
    frames: u64,
}

/// Options of [`AnnotationOverlayCalculator`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnotationOverlayCalculatorOptions {
    /// Annotations drawn on every frame, before those of the input streams.
    pub annotations: Vec<RenderAnnotation>,
    /// Draw `frame <n>  <t> s` (the frame's number in this run and its timestamp in seconds)
    /// in the bottom left corner. Default false.
    pub draw_frame_info: bool,
    /// Default line thickness and point radius in pixels (default 2).
    pub thickness: f32,
    /// OpenCV font scale of labels and text without `font_height` (default 0.5).
    pub font_scale: f64,
}

impl Default for AnnotationOverlayCalculatorOptions {
    fn default() -> Self {
        AnnotationOverlayCalculatorOptions {
            annotations: Vec::new(),
            draw_frame_info: false,
            thickness: 2.0,
            font_scale: 0.5,
        }
    }
}

const IMAGE_IN: Input<ImageFrame> = Input::new("IMAGE");
const ANNOTATIONS_IN: Input<Annotations> = Input::new("").multiple();
const IMAGE_OUT: Output<ImageFrame> = Output::new("IMAGE");

/// Font of labels and text.
const FONT: i32 = imgproc::FONT_HERSHEY_SIMPLEX;
/// Cap height of `FONT` at scale 1, in pixels.
const FONT_CAP_HEIGHT: f64 = 22.0;

impl Calculator for AnnotationOverlayCalculator {
    type Options = AnnotationOverlayCalculatorOptions;

    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()> {
        if !(options.thickness.is_finite() && options.thickness > 0.0) {
            return Err(cc.error(crate::Error::Config {
                calculator: "AnnotationOverlayCalculator",
                message: format!("thickness must be positive, got {}", options.thickness),
            }));
        }
        if !(options.font_scale.is_finite() && options.font_scale > 0.0) {
            return Err(cc.error(crate::Error::Config {
                calculator: "AnnotationOverlayCalculator",
                message: format!("font_scale must be positive, got {}", options.font_scale),
            }));
        }
        cc.declare(&[&IMAGE_IN, &ANNOTATIONS_IN, &IMAGE_OUT])?;
        cc.set_timestamp_offset(0);
        // The frame number it draws counts its own calls.
        cc.set_independent_calls(!options.draw_frame_info);
        Ok(())
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(AnnotationOverlayCalculator {
            options: options.clone(),
            frames: 0,
        })
    }

    /// Passes the `IMAGE` stream's header (e.g. a `VideoHeader`) on.
    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        if let Some(id) = cx.inputs().id(IMAGE_IN.tag(), 0) {
            let header = cx.input_header(id);
            if !header.is_empty() {
                cx.output(&IMAGE_OUT).set_header(header.clone())?;
            }
        }
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let Some(frame) = cx.input(&IMAGE_IN).get()? else {
            return Ok(Flow::Continue);
        };
        let ts = cx.input_timestamp();
        let mut out = frame.clone();
        let n = self.frames;
        self.frames += 1;
        let streams: Vec<&Annotations> = (0..cx.input_count(&ANNOTATIONS_IN))
            .filter_map(|i| cx.input_index(&ANNOTATIONS_IN, i).get().transpose())
            .collect::<Result<_>>()?;
        let nothing_to_draw = self.options.annotations.is_empty()
            && !self.options.draw_frame_info
            && streams.iter().all(|a| a.is_empty());
        if !nothing_to_draw {
            let painter = Painter {
                options: &self.options,
                format: out.format(),
                width: out.width() as f32,
                height: out.height() as f32,
            };
            out.edit("draw annotations", |mat| {
                for a in &self.options.annotations {
                    painter.draw(mat, a)?;
                }
                for a in streams.iter().flat_map(|s| s.iter()) {
                    painter.draw(mat, a)?;
                }
                if self.options.draw_frame_info {
                    // Bottom left: boxes at the top edge put their labels at the top.
                    let text = format!("frame {n}  {:.3} s", ts.seconds());
                    let y = (painter.height as i32 - painter.tab_height(&text)? - 4).max(0);
                    painter.label(mat, &text, Point::new(4, y), Color::BLACK, None)?;
                }
                Ok(())
            })?;
        }
        cx.output(&IMAGE_OUT).send(out, ts)?;
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(
    AnnotationOverlayCalculator,
    "AnnotationOverlayCalculator"
);

/// Draws annotations on one frame's `Mat`.
struct Painter<'a> {
    options: &'a AnnotationOverlayCalculatorOptions,
    format: ImageFormat,
    width: f32,
    height: f32,
}

/// Coordinates beyond this many pixels are clamped (keeps i32 conversions safe).
const COORD_LIMIT: f32 = 1.0e6;

impl Painter<'_> {
    fn scalar(&self, c: Color) -> Scalar {
        match self.format {
            ImageFormat::Srgb => Scalar::new(c.r.into(), c.g.into(), c.b.into(), 0.0),
            ImageFormat::Srgba => Scalar::new(c.r.into(), c.g.into(), c.b.into(), 255.0),
            ImageFormat::Gray8 => Scalar::all(c.luma()),
        }
    }

    /// A pixel position, or `None` for non-finite input.
    fn point(&self, x: f32, y: f32, normalized: bool) -> Option<Point> {
        if !(x.is_finite() && y.is_finite()) {
            return None;
        }
        let (x, y) = if normalized {
            (x * self.width, y * self.height)
        } else {
            (x, y)
        };
        let c = |v: f32| v.clamp(-COORD_LIMIT, COORD_LIMIT).round() as i32;
        Some(Point::new(c(x), c(y)))
    }

    fn thickness(&self, t: Option<f32>) -> i32 {
        let t = t
            .filter(|t| t.is_finite() && *t > 0.0)
            .unwrap_or(self.options.thickness);
        (t.round() as i32).clamp(1, 255)
    }

    fn draw(&self, mat: &mut impl ToInputOutputArray, a: &RenderAnnotation) -> opencv::Result<()> {
        match a {
            RenderAnnotation::Rectangle(r) => self.rectangle(mat, r),
            RenderAnnotation::Point(p) => self.dot(mat, p),
            RenderAnnotation::Line(l) => self.segment(mat, l, false),
            RenderAnnotation::Arrow(l) => self.segment(mat, l, true),
            RenderAnnotation::Text(t) => self.text(mat, t),
        }
    }

    fn rectangle(
        &self,
        mat: &mut impl ToInputOutputArray,
        r: &RectAnnotation,
    ) -> opencv::Result<()> {
        let (Some(a), Some(b)) = (
            self.point(r.left, r.top, r.normalized),
            self.point(r.right, r.bottom, r.normalized),
        ) else {
            return Ok(());
        };
        let color = r.color.or(r.id.map(Color::for_id)).unwrap_or(Color::GREEN);
        let (x0, y0) = (a.x.min(b.x), a.y.min(b.y));
        let rect = Rect::new(x0, y0, (a.x - b.x).abs(), (a.y - b.y).abs());
        let thickness = if r.filled {
            imgproc::FILLED
        } else {
            self.thickness(r.thickness)
        };
        imgproc::rectangle(mat, rect, self.scalar(color), thickness, imgproc::LINE_8, 0)?;

        let mut parts = Vec::new();
        if let Some(label) = &r.label {
            parts.push(label.clone());
        }
        if let Some(score) = r.score.filter(|s| s.is_finite()) {
            parts.push(format!("{score:.2}"));
        }
        if let Some(id) = r.id {
            parts.push(format!("#{id}"));
        }
        if !parts.is_empty() {
            // A tab above the box, or inside its top edge when the box touches the top.
            let text = parts.join(" ");
            let h = self.tab_height(&text)?;
            let top = if y0 - h >= 0 { y0 - h } else { y0 };
            self.label(mat, &text, Point::new(x0, top), color, None)?;
        }
        Ok(())
    }

    /// Height of `text`'s label tab, padding included.
    fn tab_height(&self, text: &str) -> opencv::Result<i32> {
        let mut baseline = 0;
        let size = imgproc::get_text_size(text, FONT, self.options.font_scale, 1, &mut baseline)?;
        Ok(size.height + baseline + 4)
    }

    /// `text` on a filled tab of `background` whose top left corner is `at`; the text is black
    /// or white, whichever reads better, unless `fg` is given.
    fn label(
        &self,
        mat: &mut impl ToInputOutputArray,
        text: &str,
        at: Point,
        background: Color,
        fg: Option<Color>,
    ) -> opencv::Result<()> {
        let scale = self.options.font_scale;
        let mut baseline = 0;
        let size = imgproc::get_text_size(text, FONT, scale, 1, &mut baseline)?;
        let tab = Rect::new(at.x, at.y, size.width + 4, size.height + baseline + 4);
        imgproc::rectangle(
            mat,
            tab,
            self.scalar(background),
            imgproc::FILLED,
            imgproc::LINE_8,
            0,
        )?;
        let fg = fg.unwrap_or(if background.luma() > 128.0 {
            Color::BLACK
        } else {
            Color::WHITE
        });
        let origin = Point::new(at.x + 2, at.y + 2 + size.height);
        imgproc::put_text(
            mat,
            text,
            origin,
            FONT,
            scale,
            self.scalar(fg),
            1,
            imgproc::LINE_AA,
            false,
        )
    }

    fn dot(&self, mat: &mut impl ToInputOutputArray, p: &PointAnnotation) -> opencv::Result<()> {
        let Some(c) = self.point(p.x, p.y, p.normalized) else {
            return Ok(());
        };
        let radius = self.thickness(p.radius);
        let color = self.scalar(p.color.unwrap_or(Color::RED));
        imgproc::circle(mat, c, radius, color, imgproc::FILLED, imgproc::LINE_8, 0)
    }

    fn segment(
        &self,
        mat: &mut impl ToInputOutputArray,
        l: &LineAnnotation,
        arrow: bool,
    ) -> opencv::Result<()> {
        let (Some(a), Some(b)) = (
            self.point(l.x_start, l.y_start, l.normalized),
            self.point(l.x_end, l.y_end, l.normalized),
        ) else {
            return Ok(());
        };
        let color = self.scalar(l.color.unwrap_or(Color::YELLOW));
        let t = self.thickness(l.thickness);
        if arrow {
            imgproc::arrowed_line(mat, a, b, color, t, imgproc::LINE_AA, 0, 0.3)
        } else {
            imgproc::line(mat, a, b, color, t, imgproc::LINE_AA, 0)
        }
    }

    fn text(&self, mat: &mut impl ToInputOutputArray, t: &TextAnnotation) -> opencv::Result<()> {
        let Some(at) = self.point(t.left, t.baseline, t.normalized) else {
            return Ok(());
        };
        let scale = t
            .font_height
            .filter(|h| h.is_finite() && *h > 0.0)
            .map_or(self.options.font_scale, |h| f64::from(h) / FONT_CAP_HEIGHT);
        let color = self.scalar(t.color.unwrap_or(Color::WHITE));
        let thickness = ((scale * 2.0).round() as i32).clamp(1, 8);
        imgproc::put_text(
            mat,
            &t.display_text,
            at,
            FONT,
            scale,
            color,
            thickness,
            imgproc::LINE_AA,
            false,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::annotation::PointAnnotation;
    use crate::test_util::{at, graph, record};

    const GRAPH: &str = r#"
input_stream: [frames, boxes, points]
output_stream: [out]
node:
  - calculator: AnnotationOverlayCalculator
    input_stream: ["IMAGE:frames", boxes, points]
    output_stream: ["IMAGE:out"]
    options: {thickness: 1}
"#;

    fn gray_frame() -> ImageFrame {
        ImageFrame::from_pixels(ImageFormat::Srgb, 96, 96, vec![90; 96 * 96 * 3]).unwrap()
    }

    #[test]
    fn draws_each_annotation_stream_at_its_timestamp() {
        let mut g = graph(GRAPH);
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        let mut boxes = Annotations::new();
        boxes.push(RectAnnotation {
            id: Some(4),
            ..RenderAnnotation::rect(20.0, 40.0, 60.0, 80.0)
        });
        let mut points = Annotations::new();
        points.push(PointAnnotation {
            x: 0.85,
            y: 0.15,
            normalized: true,
            radius: Some(2.0),
            ..PointAnnotation::default()
        });
        let input = gray_frame();
        g.add_packet("frames", at(input.clone(), 0)).unwrap();
        g.add_packet("boxes", at(boxes, 0)).unwrap();
        g.add_packet("points", at(points, 0)).unwrap();
        // Timestamp 1: a frame and no annotations.
        g.add_packet("frames", at(input.clone(), 1)).unwrap();
        g.finish().unwrap();

        let frames = out.values::<ImageFrame>();
        assert_eq!(frames.len(), 2);
        let (first, second) = (&frames[0].1, &frames[1].1);
        let c = Color::for_id(4);
        assert_eq!(first.pixel(20, 60), Some(&[c.r, c.g, c.b][..]));
        assert_eq!(
            first.pixel(40, 60),
            Some(&[90, 90, 90][..]),
            "inside the box"
        );
        assert_eq!(first.pixel(82, 14), Some(&[255, 0, 0][..]), "the point");
        // The id tab ("#4") sits above the box in the id's color.
        assert_eq!(first.pixel(21, 38), Some(&[c.r, c.g, c.b][..]));
        assert_eq!(second, &input, "nothing to draw at timestamp 1");
        assert!(
            second.shares_pixels_with(&input),
            "undrawn frames are not copied"
        );
        assert!(
            input.pixels().iter().all(|&p| p == 90),
            "the input is not changed"
        );
    }

    #[test]
    fn rejects_bad_options() {
        let err = crate::test_util::config_error(
            "node: [{calculator: AnnotationOverlayCalculator, input_stream: ['IMAGE:a'], output_stream: ['IMAGE:b'], options: {thickness: 0}}]",
        );
        assert!(err.contains("thickness must be positive"), "{err}");
    }

    /// Parallel calls (`max_in_flight`) draw what one call at a time draws; with the frame
    /// number drawn (a count of its own calls) the calculator refuses them.
    #[test]
    fn parallel_calls_draw_the_same_frames_and_frame_info_refuses_them() {
        let config = |max_in_flight: usize, frame_info: bool| {
            format!(
                "input_stream: [frames, boxes]\noutput_stream: [out]\nnum_threads: 2\nnode:\n  - {{calculator: AnnotationOverlayCalculator, name: overlay, input_stream: [\"IMAGE:frames\", boxes], output_stream: [\"IMAGE:out\"], max_in_flight: {max_in_flight}, options: {{draw_frame_info: {frame_info}}}}}\n"
            )
        };
        let run = |max_in_flight: usize| {
            let mut g = graph(&config(max_in_flight, false));
            let out = record(&mut g, "out");
            g.start_run(Default::default()).unwrap();
            for t in 0..30 {
                let mut boxes = Annotations::new();
                let x = 2.0 * t as f32;
                boxes.push(RenderAnnotation::rect(x, 10.0, x + 30.0, 60.0));
                g.add_packet("frames", at(gray_frame(), t)).unwrap();
                g.add_packet("boxes", at(boxes, t)).unwrap();
            }
            g.finish().unwrap();
            out.values::<ImageFrame>()
        };
        let (serial, parallel) = (run(1), run(2));
        assert_eq!(serial.len(), 30);
        assert!(serial
            .iter()
            .zip(&parallel)
            .all(|(a, b)| a.0 == b.0 && a.1 == b.1));
        assert_eq!(serial.len(), parallel.len());
        let err = match mediagraph_framework::Graph::from_yaml_str(&config(2, true)) {
            Ok(_) => panic!("max_in_flight with draw_frame_info was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("AnnotationOverlayCalculator does not declare independent calls"),
            "{err}"
        );
    }
}
