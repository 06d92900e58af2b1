//! The actions routes are guarded by: one table of (casbin object, casbin
//! action, where the project comes from). A handler names its action in its
//! signature (`Guarded<ReadEvents>`), and the route table checks at compile
//! time that the handler registered for a route takes the action the table
//! declares for it, so an unguarded handler cannot be wired.

/// Where the project of a check comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// From the data the request touches: the event's, the model's, the
    /// entity's project. The handler checks once it knows it, and data of
    /// a project the caller may not read is left out or answered 404.
    Data,
    /// Outside any project (the ledger as a whole, tokens, the policy, data
    /// subjects, whose pseudonyms belong to no project): only tokens for
    /// every project can be allowed.
    Ledger,
}

/// One action: what casbin is asked, and what it guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// The name of its type, as in `Guarded<ReadEvents>`.
    pub name: &'static str,
    /// The casbin object; `{kind}` stands for the event kind being appended.
    pub object: &'static str,
    /// The casbin action.
    pub action: &'static str,
    pub scope: Scope,
    /// What it guards, for the documentation and error messages.
    pub guards: &'static str,
}

impl Action {
    /// The casbin object for an event of `kind` (for [`AppendEvents`]) or
    /// the object itself.
    pub fn object_for(&self, kind: &str) -> String {
        self.object.replace("{kind}", kind)
    }
}

/// A type that names an action, for `Guarded<A>`.
pub trait Guard: 'static {
    const ACTION: Action;
}

macro_rules! actions {
    ($($(#[$doc:meta])* $name:ident = ($object:literal, $action:literal, $scope:ident, $guards:literal);)*) => {
        $(
            $(#[$doc])*
            pub struct $name;
            impl Guard for $name {
                const ACTION: Action = Action {
                    name: stringify!($name),
                    object: $object,
                    action: $action,
                    scope: Scope::$scope,
                    guards: $guards,
                };
            }
        )*
        /// Every action, in the order of this table.
        pub const ACTIONS: &[Action] = &[$($name::ACTION,)*];
    };
}

actions! {
    /// Reading events and what is derived from them (lineage, entities,
    /// approvals, the gate, search, an event's inclusion proof), in the
    /// data's project.
    ReadEvents = ("events", "read", Data, "events and what is derived from them, in their project");
    /// Appending events of a kind, in the events' project.
    AppendEvents = ("events/{kind}", "append", Data, "recording an event of that kind in its project");
    /// Reports built from the events of the projects the caller reads.
    ReadReports = ("reports", "read", Data, "reports over the projects it may read");
    /// Personal fields in clear (a field-level check within a read).
    ReadPersonal = ("personal", "read", Data, "personal fields in clear, in the event's project");
    /// The size, head and consistency of the whole ledger.
    ReadLedger = ("events", "read", Ledger, "the whole ledger's size and head");
    /// Verifying the whole chain and proving consistency between sizes.
    VerifyLedger = ("proofs", "read", Ledger, "verification and consistency of the whole ledger");
    /// A data subject's access answer (pseudonyms belong to no project).
    ReadSubjects = ("subjects", "read", Ledger, "a data subject's access answer");
    /// Erasing a data subject's personal data.
    EraseSubjects = ("subjects", "erase", Ledger, "erasure of a data subject");
    /// Issuing and listing tokens.
    IssueTokens = ("tokens", "issue", Ledger, "issuing and listing tokens");
    /// Revoking tokens.
    RevokeTokens = ("tokens", "revoke", Ledger, "revoking tokens");
    /// Reading the access policy.
    ReadPolicy = ("policies", "read", Ledger, "the access policy");
    /// Replacing the access policy.
    WritePolicy = ("policies", "write", Ledger, "replacing the access policy");
    /// Webhook subscriptions and their deliveries, in the projects a
    /// subscription delivers from.
    ReadWebhooks = ("webhooks", "read", Data, "webhook subscriptions and their delivery attempts, in the projects they deliver from");
    /// Creating, changing, replaying and deleting webhook subscriptions.
    ManageWebhooks = ("webhooks", "manage", Data, "creating, changing, replaying and deleting webhook subscriptions");
}
