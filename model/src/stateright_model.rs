//! `RaftModel` as stateright's `Model`: the steps of `model.rs`, the properties of
//! `properties.rs` and the pictures of `svg.rs`, tied together here so that none of those
//! three depends on another above it.

use stateright::{Model, Property};

use crate::model::{Action, RaftModel};
use crate::properties;
use crate::state::State;

impl Model for RaftModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State::new(&self.cfg)]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        self.enabled_actions(state, actions);
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let next = self.step(last, &action).map(|(state, _)| state)?;
        if self.explorer && !self.in_bounds(&next) {
            return None;
        }
        Some(next)
    }

    fn within_boundary(&self, state: &State) -> bool {
        self.in_bounds(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::all(&self.cfg)
    }

    fn format_action(&self, action: &Action) -> String {
        format!("{action:?}")
    }

    /// The text the explorer shows for a step's state; only the explorer calls it, so the
    /// verdicts cost nothing during a check.
    fn format_step(&self, last: &State, action: Action) -> Option<String> {
        let next = self.next_state(last, action)?;
        Some(format!(
            "{}\n\n{next:?}",
            properties::explorer_header(self, &next)
        ))
    }

    /// The picture above the state text; only the explorer calls it (`svg.rs`).
    fn as_svg(&self, path: stateright::Path<State, Action>) -> Option<String> {
        Some(crate::svg::render(self, &path.into_vec()))
    }
}
