//! [`CycleState`]: data plugins compute for one pod's scheduling cycle (in PreFilter or
//! PreScore) and read back at later extension points, keyed by the data's type so that each
//! plugin keeps a private type and no strings are compared.

use std::any::{Any, TypeId};

use super::NodeSet;

/// A value kept in a [`CycleState`]: any `Clone + Send + Sync + 'static` type (cloning is
/// needed when preemption evaluates what-ifs on a copy of the state).
pub trait StateData: Any + Send + Sync {
    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn StateData>;
    /// As `Any`, to downcast.
    fn as_any(&self) -> &dyn Any;
    /// As mutable `Any`, to downcast.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Clone + Send + Sync> StateData for T {
    fn clone_box(&self) -> Box<dyn StateData> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Per-cycle data; see the [module docs](self).
#[derive(Default)]
pub struct CycleState {
    entries: Vec<(TypeId, Box<dyn StateData>)>,
    /// The nodes PreFilter plugins left possible (every node when `None`).
    candidates: Option<NodeSet>,
}

impl Clone for CycleState {
    fn clone(&self) -> Self {
        CycleState {
            entries: self
                .entries
                .iter()
                .map(|(id, v)| (*id, (**v).clone_box()))
                .collect(),
            candidates: self.candidates.clone(),
        }
    }
}

impl std::fmt::Debug for CycleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CycleState")
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl CycleState {
    /// An empty state.
    pub fn new() -> Self {
        CycleState::default()
    }

    /// Store a value, replacing the previous value of its type.
    pub fn write<T: StateData>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        match self.entries.iter_mut().find(|(k, _)| *k == id) {
            Some(entry) => entry.1 = Box::new(value),
            None => self.entries.push((id, Box::new(value))),
        }
    }

    /// The value of type `T`, if written this cycle.
    pub fn read<T: StateData>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter()
            .find(|(k, _)| *k == id)
            .and_then(|(_, v)| (**v).as_any().downcast_ref())
    }

    /// PreFilter: only the nodes in `nodes` can pass this plugin's Filter, whatever pods they
    /// run (the Filter depends on node labels, names or the like); the Filter phase then
    /// visits only the nodes every such plugin left. A node outside the set must be one the
    /// plugin's Filter rejects: the set narrows the search, it never decides on its own
    /// (when the cycle finds no node, every node is filtered to explain why).
    pub fn restrict_nodes(&mut self, nodes: NodeSet) {
        match &mut self.candidates {
            Some(set) => set.intersect(&nodes),
            None => self.candidates = Some(nodes),
        }
    }

    /// The nodes the PreFilter plugins left, if any restricted them.
    pub fn candidate_nodes(&self) -> Option<&NodeSet> {
        self.candidates.as_ref()
    }

    /// The value of type `T`, mutably.
    pub fn read_mut<T: StateData>(&mut self) -> Option<&mut T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter_mut()
            .find(|(k, _)| *k == id)
            .and_then(|(_, v)| (**v).as_any_mut().downcast_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct A(u32);
    #[derive(Clone, Debug, PartialEq)]
    struct B(&'static str);

    #[test]
    fn values_are_keyed_by_type_and_clone_deeply() {
        let mut state = CycleState::new();
        assert_eq!(state.read::<A>(), None);
        state.write(A(1));
        state.write(B("x"));
        state.write(A(2));
        assert_eq!(state.read::<A>(), Some(&A(2)));
        let copy = state.clone();
        state.read_mut::<A>().unwrap().0 = 3;
        assert_eq!(copy.read::<A>(), Some(&A(2)));
        assert_eq!(state.read::<A>(), Some(&A(3)));
        assert_eq!(copy.read::<B>(), Some(&B("x")));
    }
}
