//! Diesel schema, shared by both backends (portable column types only).

diesel::table! {
    events (seq) {
        seq -> BigInt,
        id -> Text,
        recorded_at -> Text,
        actor -> Text,
        kind -> Text,
        subject -> Text,
        project -> Nullable<Text>,
        inputs -> Text,
        outputs -> Text,
        attributes -> Text,
        occurred_at -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        prev_hash -> Binary,
        hash -> Binary,
    }
}

diesel::table! {
    checkpoints (tree_size) {
        tree_size -> BigInt,
        root_hash -> Binary,
        note -> Text,
        created_at -> Text,
    }
}
