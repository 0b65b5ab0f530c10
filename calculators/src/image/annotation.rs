//! What to draw on a frame, independent of how it is drawn: boxes (with label, score and id),
//! points, lines, arrows (motion vectors) and text. Detection and tracking calculators produce
//! [`Annotations`]; [`super::AnnotationOverlayCalculator`] draws them. The field names follow
//! MediaPipe's `RenderAnnotation` where it has one.
//!
//! Coordinates are pixels, or fractions of the frame's width and height when `normalized` is
//! set. In YAML (the overlay's `annotations` option) and in dumps, an annotation is an object
//! with a `type`:
//!
//! ```yaml
//! - {type: rectangle, left: 0.1, top: 0.1, right: 0.4, bottom: 0.5, normalized: true,
//!    label: person, score: 0.9, id: 3}
//! - {type: point, x: 100, y: 80}
//! - {type: arrow, x_start: 10, y_start: 10, x_end: 30, y_end: 12}
//! - {type: text, display_text: "hello", left: 10, baseline: 30}
//! ```

use serde::{Deserialize, Serialize};

/// An 8-bit RGB color.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Color {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
}

impl Color {
    /// Black.
    pub const BLACK: Color = Color::rgb(0, 0, 0);
    /// White.
    pub const WHITE: Color = Color::rgb(255, 255, 255);
    /// Pure red.
    pub const RED: Color = Color::rgb(255, 0, 0);
    /// Pure green.
    pub const GREEN: Color = Color::rgb(0, 255, 0);
    /// Yellow.
    pub const YELLOW: Color = Color::rgb(255, 255, 0);

    /// A color from its components.
    pub const fn rgb(r: u8, g: u8, b: u8) -> Color {
        Color { r, g, b }
    }

    /// A saturated color that depends only on `id`: the same id always gets the same color, in
    /// every frame and every run, and consecutive ids get clearly different hues (golden-ratio
    /// hue steps).
    pub fn for_id(id: i64) -> Color {
        const GOLDEN: f64 = 0.618_033_988_749_895;
        let hue = (id as f64 * GOLDEN).rem_euclid(1.0);
        // Alternate brightness too, so ids whose hues land close still differ.
        let value = if id.rem_euclid(2) == 0 { 1.0 } else { 0.8 };
        Color::from_hsv(hue, 0.85, value)
    }

    /// A color from hue (0..1, wrapping), saturation and value (0..1).
    pub fn from_hsv(hue: f64, saturation: f64, value: f64) -> Color {
        let h = hue.rem_euclid(1.0) * 6.0;
        let s = saturation.clamp(0.0, 1.0);
        let v = value.clamp(0.0, 1.0);
        let sector = h.floor();
        let f = h - sector;
        let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let (r, g, b) = match sector as u8 {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        };
        let to8 = |x: f64| (x * 255.0).round() as u8;
        Color::rgb(to8(r), to8(g), to8(b))
    }

    /// Perceived brightness, 0..255 (ITU-R BT.601 weights).
    pub fn luma(self) -> f64 {
        0.299 * f64::from(self.r) + 0.587 * f64::from(self.g) + 0.114 * f64::from(self.b)
    }
}

/// A box, optionally labelled with a class name, a score and a (track) id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RectAnnotation {
    /// Left edge.
    pub left: f32,
    /// Top edge.
    pub top: f32,
    /// Right edge.
    pub right: f32,
    /// Bottom edge.
    pub bottom: f32,
    /// Coordinates are fractions of the frame size.
    #[serde(default)]
    pub normalized: bool,
    /// Class name or other text shown above the box.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Confidence shown after the label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Track or detection id: shown as `#id`, and picks the color when `color` is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Color (default: by id, else green).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
    /// Line thickness in pixels (default: the overlay's `thickness`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thickness: Option<f32>,
    /// Fill the box instead of outlining it.
    #[serde(default)]
    pub filled: bool,
}

/// A dot (e.g. a tracked feature point).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointAnnotation {
    /// Horizontal position.
    pub x: f32,
    /// Vertical position.
    pub y: f32,
    /// Coordinates are fractions of the frame size.
    #[serde(default)]
    pub normalized: bool,
    /// Radius in pixels (default: the overlay's `thickness`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radius: Option<f32>,
    /// Color (default red).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
}

/// A segment; drawn with an arrow head as [`RenderAnnotation::Arrow`] (e.g. a motion vector
/// from a feature's previous to its current position).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineAnnotation {
    /// Start, horizontal.
    pub x_start: f32,
    /// Start, vertical.
    pub y_start: f32,
    /// End, horizontal (the arrow head).
    pub x_end: f32,
    /// End, vertical.
    pub y_end: f32,
    /// Coordinates are fractions of the frame size.
    #[serde(default)]
    pub normalized: bool,
    /// Line thickness in pixels (default: the overlay's `thickness`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thickness: Option<f32>,
    /// Color (default yellow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
}

/// A line of text.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextAnnotation {
    /// The text.
    pub display_text: String,
    /// Left end of the baseline.
    pub left: f32,
    /// Vertical position of the baseline.
    pub baseline: f32,
    /// Coordinates are fractions of the frame size.
    #[serde(default)]
    pub normalized: bool,
    /// Approximate height of capital letters in pixels (default: from the overlay's
    /// `font_scale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub font_height: Option<f32>,
    /// Color (default white, on a dark background box).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
}

/// One thing to draw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RenderAnnotation {
    /// A box with optional label, score and id.
    Rectangle(RectAnnotation),
    /// A dot.
    Point(PointAnnotation),
    /// A segment.
    Line(LineAnnotation),
    /// A segment with an arrow head at its end.
    Arrow(LineAnnotation),
    /// Text.
    Text(TextAnnotation),
}

impl RenderAnnotation {
    /// A pixel-coordinate box.
    pub fn rect(left: f32, top: f32, right: f32, bottom: f32) -> RectAnnotation {
        RectAnnotation {
            left,
            top,
            right,
            bottom,
            ..RectAnnotation::default()
        }
    }
}

impl From<RectAnnotation> for RenderAnnotation {
    fn from(r: RectAnnotation) -> Self {
        RenderAnnotation::Rectangle(r)
    }
}

impl From<PointAnnotation> for RenderAnnotation {
    fn from(p: PointAnnotation) -> Self {
        RenderAnnotation::Point(p)
    }
}

impl From<TextAnnotation> for RenderAnnotation {
    fn from(t: TextAnnotation) -> Self {
        RenderAnnotation::Text(t)
    }
}

/// Everything to draw on one frame: the payload of the overlay's annotation streams.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Annotations(pub Vec<RenderAnnotation>);

impl Annotations {
    /// No annotations.
    pub fn new() -> Annotations {
        Annotations::default()
    }

    /// Adds one.
    pub fn push(&mut self, a: impl Into<RenderAnnotation>) {
        self.0.push(a.into());
    }

    /// The annotations, in drawing order.
    pub fn iter(&self) -> std::slice::Iter<'_, RenderAnnotation> {
        self.0.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<RenderAnnotation> for Annotations {
    fn from_iter<I: IntoIterator<Item = RenderAnnotation>>(iter: I) -> Self {
        Annotations(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Annotations {
    type Item = &'a RenderAnnotation;
    type IntoIter = std::slice::Iter<'a, RenderAnnotation>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

mediagraph_framework::register_packet_type!(Annotations, "Annotations");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_colors_are_stable_and_distinct() {
        assert_eq!(Color::for_id(7), Color::for_id(7));
        for id in -20..20 {
            let (a, b) = (Color::for_id(id), Color::for_id(id + 1));
            let d = (i32::from(a.r) - i32::from(b.r)).abs()
                + (i32::from(a.g) - i32::from(b.g)).abs()
                + (i32::from(a.b) - i32::from(b.b)).abs();
            assert!(d > 60, "ids {id} and {} too close: {a:?} {b:?}", id + 1);
        }
        assert_eq!(Color::from_hsv(0.0, 1.0, 1.0), Color::RED);
    }

    #[test]
    fn yaml_shape_round_trips() {
        let json = serde_json::json!([
            {"type": "rectangle", "left": 0.1, "top": 0.1, "right": 0.4, "bottom": 0.5,
             "normalized": true, "label": "person", "score": 0.9, "id": 3},
            {"type": "point", "x": 100.0, "y": 80.0, "color": {"r": 1, "g": 2, "b": 3}},
            {"type": "arrow", "x_start": 10.0, "y_start": 10.0, "x_end": 30.0, "y_end": 12.0},
            {"type": "text", "display_text": "hi", "left": 10.0, "baseline": 30.0}
        ]);
        let a: Annotations = serde_json::from_value(json).unwrap();
        assert_eq!(a.len(), 4);
        match &a.0[0] {
            RenderAnnotation::Rectangle(r) => {
                assert_eq!(r.id, Some(3));
                assert!(r.normalized);
            }
            other => panic!("expected a rectangle, got {other:?}"),
        }
        let back: Annotations = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        let err = serde_json::from_value::<Annotations>(
            serde_json::json!([{"type": "point", "x": 1, "y": 2, "colour": null}]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
