//! For tests: records the spans opened on this thread while a capture is installed, with their
//! fields, so a test can check that a phase runs inside a span naming its id.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One span: its name and the fields recorded on it (values as `Display`/`Debug` text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenSpan {
    pub name: String,
    pub fields: BTreeMap<String, String>,
}

/// The spans seen so far, in the order they were opened.
#[derive(Debug, Clone, Default)]
pub struct Spans(Arc<Mutex<Vec<SeenSpan>>>);

/// Where a span's entry is in [`Spans`], kept in the span's extensions.
struct Index(usize);

impl Spans {
    /// Starts recording; recording stops when the guard is dropped.
    pub fn install() -> (Spans, tracing::subscriber::DefaultGuard) {
        let spans = Spans::default();
        let subscriber = tracing_subscriber::registry().with(spans.clone());
        (spans, tracing::subscriber::set_default(subscriber))
    }

    /// The fields of every span called `name`.
    pub fn named(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        self.lock()
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.fields.clone())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<SeenSpan>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Collects field values as text.
#[derive(Default)]
struct Text(BTreeMap<String, String>);

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut text = Text::default();
        attrs.record(&mut text);
        let index = {
            let mut all = self.lock();
            all.push(SeenSpan {
                name: attrs.metadata().name().to_string(),
                fields: text.0,
            });
            all.len() - 1
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Index(index));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let extensions = span.extensions();
        let Some(Index(index)) = extensions.get::<Index>() else {
            return;
        };
        let mut text = Text::default();
        values.record(&mut text);
        if let Some(seen) = self.lock().get_mut(*index) {
            seen.fields.extend(text.0);
        }
    }
}
