extern crate godev_kafka as renamed;

use renamed::{Event, HandlerError, handler};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(crate = "renamed", topic = "t", name = "n")]
struct Renamed {
    id: u32,
}

#[handler(crate = "renamed")]
async fn on_renamed(event: Renamed) -> Result<(), HandlerError> {
    let _ = event.id;
    Ok(())
}

fn main() {
    assert!(<on_renamed as renamed::Handler>::NAME.ends_with("::on_renamed"));
}
