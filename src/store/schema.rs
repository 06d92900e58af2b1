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

diesel::table! {
    entities (ref_) {
        #[sql_name = "ref"]
        ref_ -> Text,
        entity_type -> Text,
        name -> Text,
        version -> Nullable<Text>,
        project -> Nullable<Text>,
        status -> Text,
        state -> Text,
        created_seq -> BigInt,
        updated_seq -> BigInt,
        owned_seq -> Nullable<BigInt>,
    }
}

diesel::table! {
    lineage_edges (source, target, created_seq) {
        source -> Text,
        target -> Text,
        created_seq -> BigInt,
        ended_seq -> Nullable<BigInt>,
        kind -> Text,
    }
}

diesel::table! {
    approvals (id) {
        id -> Text,
        model -> Text,
        environment -> Text,
        project -> Nullable<Text>,
        state -> Text,
        requested_by -> Text,
        requested_seq -> BigInt,
        requested_at -> Text,
        required_approvals -> Integer,
        valid_for_seconds -> BigInt,
        evidence -> Text,
        note -> Text,
        granted_at -> Nullable<Text>,
        expires_at -> Nullable<Text>,
        decided_seq -> Nullable<BigInt>,
    }
}

diesel::table! {
    approval_decisions (seq) {
        seq -> BigInt,
        approval_id -> Text,
        actor -> Text,
        decision -> Text,
        reason -> Text,
        recorded_at -> Text,
    }
}

diesel::table! {
    projection_state (name) {
        name -> Text,
        backlog_until -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(events, entities, lineage_edges, approvals, approval_decisions);

diesel::table! {
    subject_keys (pseudonym) {
        pseudonym -> Text,
        key_id -> Text,
        wrapped -> Text,
        created_at -> Text,
    }
}

diesel::table! {
    subject_key_log (id) {
        id -> BigInt,
        pseudonym -> Text,
        key_id -> Text,
        wrapped -> Text,
        created_at -> Text,
    }
}

diesel::table! {
    subject_events (pseudonym, seq) {
        pseudonym -> Text,
        seq -> BigInt,
    }
}

diesel::table! {
    subject_index_state (id) {
        id -> Integer,
        applied_through -> BigInt,
    }
}

diesel::table! {
    webhook_cursors (webhook_id) {
        webhook_id -> Text,
        delivered_through -> BigInt,
        applied_change_seq -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_until -> BigInt,
        retry_seq -> Nullable<BigInt>,
        retry_since -> Nullable<Text>,
        retry_attempts -> Integer,
        last_error -> Nullable<Text>,
        last_delivered_at -> Nullable<Text>,
        updated_at -> Text,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> BigInt,
        webhook_id -> Text,
        seq -> BigInt,
        message_id -> Text,
        kind -> Text,
        attempt -> Integer,
        attempted_at -> Text,
        result -> Text,
        status_code -> Nullable<Integer>,
        latency_micros -> BigInt,
        error -> Nullable<Text>,
        next_attempt_at -> Nullable<Text>,
        replica -> Text,
    }
}

diesel::table! {
    monitoring_series (key) {
        key -> Text,
        rule -> Text,
        model -> Text,
        environment -> Text,
        segment -> Text,
        level -> Text,
        warning_run -> BigInt,
        critical_run -> BigInt,
        ok_run -> BigInt,
        last_window_end -> Nullable<Text>,
        open_seq -> Nullable<BigInt>,
        recent_seqs -> Text,
        rules_seq -> BigInt,
    }
}

diesel::table! {
    merkle_tiles (level, idx) {
        level -> SmallInt,
        idx -> BigInt,
        hashes -> Binary,
    }
}
