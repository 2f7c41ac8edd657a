//! The watcher's state machine: list, watch from the list's resourceVersion, resume from the
//! last seen one, re-list on 410, sleep a backoff after failures.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rand::Rng;

use super::{Event, WatcherConfig};
use crate::client::Client;
use crate::registry::{ApiError, ListOptions, WatchEvent, WatchEvents, WatchOptions};
use crate::resource::Resource;

/// Where the watcher stands.
enum Phase<R> {
    /// No (valid) resourceVersion: list everything next.
    List,
    /// Open a watch from this resourceVersion next.
    Resume(String),
    /// Reading a watch: the last resourceVersion seen, the events, and whether this watch
    /// delivered anything yet (one that ends at once counts as a failure, so it is not
    /// reopened in a tight loop).
    Watching(String, WatchEvents<R>, bool),
}

/// The whole state carried between items of the stream.
pub(super) struct Machine<R, C> {
    client: C,
    config: WatcherConfig,
    phase: Phase<R>,
    /// Sleep this long before the next attempt (after a failure).
    delay: Option<Duration>,
    /// No watch event since the last list: a 410 now means the list itself was too old,
    /// so relisting at once could spin; it backs off instead.
    fresh: bool,
}

impl<R: Resource, C: Client> Machine<R, C> {
    pub(super) fn new(client: C, config: WatcherConfig) -> Self {
        Machine {
            client,
            config,
            phase: Phase::List,
            delay: None,
            fresh: false,
        }
    }

    /// A 410: list again, at once unless nothing was seen since the last list.
    fn expired(&mut self) {
        if self.fresh {
            self.failed();
        }
        self.phase = Phase::List;
    }

    /// Counts a failure: the next attempt waits a backoff delay.
    fn failed(&mut self) {
        let sample: f64 = rand::rng().random();
        self.delay = Some(self.config.backoff.next_delay(sample));
    }

    fn succeeded(&mut self) {
        self.config.backoff.reset();
    }

    /// The next item of the stream (`unfold`'s step; never `None`).
    pub(super) async fn next(mut self) -> Option<(Result<Event<R>, ApiError>, Self)> {
        loop {
            if let Some(delay) = self.delay.take() {
                tokio::time::sleep(delay).await;
            }
            match std::mem::replace(&mut self.phase, Phase::List) {
                Phase::List => match list::<R, C>(&self.client, &self.config).await {
                    Ok((objects, rv)) => {
                        self.succeeded();
                        self.fresh = true;
                        self.phase = Phase::Resume(rv);
                        return Some((Ok(Event::Restarted(objects)), self));
                    }
                    Err(err) => {
                        self.failed();
                        return Some((Err(err), self));
                    }
                },
                Phase::Resume(rv) => match open::<R, C>(&self.client, &self.config, &rv).await {
                    Ok(events) => self.phase = Phase::Watching(rv, events, false),
                    Err(err) => {
                        if matches!(err, ApiError::Expired(_)) {
                            self.expired();
                        } else {
                            self.failed();
                            self.phase = Phase::Resume(rv);
                        }
                        return Some((Err(err), self));
                    }
                },
                Phase::Watching(rv, mut events, delivered) => match events.next().await {
                    None => {
                        // The server closed the watch (a disconnect): resume where it stopped.
                        if !delivered {
                            self.failed();
                        }
                        self.phase = Phase::Resume(rv);
                    }
                    Some(Err(err)) => {
                        if matches!(err, ApiError::Expired(_)) {
                            self.expired();
                        } else {
                            self.failed();
                            self.phase = Phase::Resume(rv);
                        }
                        return Some((Err(err), self));
                    }
                    Some(Ok(event)) => {
                        self.succeeded();
                        self.fresh = false;
                        let next_rv = event.resource_version().to_owned();
                        self.phase = Phase::Watching(next_rv, events, true);
                        let event = match event {
                            WatchEvent::Added(o) | WatchEvent::Modified(o) => Event::Applied(o),
                            WatchEvent::Deleted(o) => Event::Deleted(o),
                            WatchEvent::Bookmark(_) => continue,
                        };
                        return Some((Ok(event), self));
                    }
                },
            }
        }
    }
}

/// Lists every selected object (all pages, one revision).
async fn list<R: Resource, C: Client>(
    client: &C,
    config: &WatcherConfig,
) -> Result<(Vec<Arc<R>>, String), ApiError> {
    let mut options = ListOptions {
        label_selector: config.label_selector.clone(),
        field_selector: config.field_selector.clone(),
        limit: config.page_size,
        continue_token: None,
        // A consistent list: the watch resumes from its resourceVersion.
        resource_version: None,
    };
    let namespace = config.namespace.as_deref();
    let mut objects = Vec::new();
    loop {
        // Shared: an in-process client's list is its watch cache's own objects.
        let page = client.list_shared::<R>(namespace, &options).await?;
        objects.extend(page.items);
        match page.continue_token {
            Some(token) => options.continue_token = Some(token),
            None => return Ok((objects, page.resource_version)),
        }
    }
}

/// Opens a watch of the changes after `rv`.
async fn open<R: Resource, C: Client>(
    client: &C,
    config: &WatcherConfig,
    rv: &str,
) -> Result<WatchEvents<R>, ApiError> {
    let options = WatchOptions {
        label_selector: config.label_selector.clone(),
        field_selector: config.field_selector.clone(),
        resource_version: Some(rv.to_owned()),
        bookmark_interval: config.bookmark_interval,
    };
    client
        .watch::<R>(config.namespace.as_deref(), &options)
        .await
}
