//! The consumers' handlers: log without personal data at info, report, acknowledge.
//!
//! The Go kit logged whole payloads (e-mail addresses, texts to translate) at info. Here info
//! carries the event's type, id, user id and record coordinates; the e-mail, the free-form data
//! and the texts appear at debug only.

use godev_kafka::{Context, HandlerError, handler};

use super::handled::{Handled, HandledReports};
use crate::entity::{TranslationEvent, UserEvent};

/// Handles every user event type (the Go kit's `handleUserEvent`).
#[handler]
pub async fn on_user_event(event: UserEvent, ctx: Context) -> Result<(), HandlerError> {
    let data = event.data();
    tracing::info!(
        event_type = ctx.tag(),
        id = data.id,
        user_id = data.user_id,
        topic = ctx.topic(),
        partition = ctx.partition(),
        offset = ctx.offset(),
        "user event handled"
    );
    tracing::debug!(id = data.id, email = %data.email, data = %data.data, "user event payload");
    publish(&ctx, data.id, data.user_id);
    Ok(())
}

/// Handles every translation event type (the Go kit's `handleTranslationEvent`).
#[handler]
pub async fn on_translation_event(
    event: TranslationEvent,
    ctx: Context,
) -> Result<(), HandlerError> {
    let data = event.data();
    tracing::info!(
        event_type = ctx.tag(),
        id = data.id,
        user_id = data.user_id,
        source = %data.source,
        target = %data.target,
        topic = ctx.topic(),
        partition = ctx.partition(),
        offset = ctx.offset(),
        "translation event handled"
    );
    tracing::debug!(
        id = data.id,
        original = %data.original,
        translated = %data.translated,
        "translation event payload"
    );
    publish(&ctx, data.id, data.user_id);
    Ok(())
}

/// Reports the event on the use case's channel, when the consumer was given one.
fn publish(ctx: &Context, id: i64, user_id: i64) {
    if let Some(reports) = ctx.state::<HandledReports>() {
        reports.publish(report(ctx, id, user_id));
    }
}

fn report(ctx: &Context, id: i64, user_id: i64) -> Handled {
    Handled {
        id,
        event_type: ctx.tag().to_owned(),
        user_id,
        topic: ctx.topic().to_owned(),
        partition: ctx.partition(),
        offset: ctx.offset(),
        group: ctx.group().to_owned(),
    }
}
