// The tables of migrations/sqlite, as Diesel sees them.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        level -> Text,
        password_hash -> Text,
        must_change_password -> Bool,
        active -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
        full_name -> Text,
        email -> Text,
        email_index -> Text,
        two_factor_enabled -> Bool,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        token_digest -> Text,
        key_epoch -> BigInt,
        user_id -> Text,
        csrf_token -> Text,
        ip -> Text,
        user_agent -> Text,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        stage -> Text,
    }
}

diesel::table! {
    page_access (level, page) {
        level -> Text,
        page -> Text,
        allowed -> Bool,
    }
}

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    root_key_checks (version) {
        version -> BigInt,
        check_value -> Text,
        created_at -> BigInt,
        retired -> Bool,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> BigInt,
        actor_id -> Text,
        actor_name -> Text,
        ip -> Text,
        action -> Text,
        target -> Text,
        outcome -> Text,
        detail -> Text,
        prev_mac -> Text,
        mac -> Text,
    }
}

diesel::table! {
    encryption_policies (table_name) {
        table_name -> Text,
        cipher -> Text,
        hash -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    encrypted_columns (table_name, column_name) {
        table_name -> Text,
        column_name -> Text,
        encrypted -> Bool,
    }
}

diesel::table! {
    reencryption_jobs (id) {
        id -> BigInt,
        reason -> Text,
        state -> Text,
        total -> BigInt,
        rewritten -> BigInt,
        unreadable -> BigInt,
        column_index -> Integer,
        after_row -> Text,
        plain_columns -> Text,
        started_at -> BigInt,
        finished_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    two_factor (user_id) {
        user_id -> Text,
        secret -> Text,
        enabled -> Bool,
        last_used_step -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Text,
        user_id -> Text,
        code_digest -> Text,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    patients (user_id) {
        user_id -> Text,
        national_id -> Text,
        national_id_index -> Text,
        first_name -> Text,
        last_name -> Text,
        date_of_birth -> Text,
        gender -> Text,
        blood_type -> Text,
        phone -> Text,
        email -> Text,
        address -> Text,
        postal_code -> Text,
        height_cm -> Text,
        weight_kg -> Text,
        allergies -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    care_assignments (doctor_id, patient_id) {
        doctor_id -> Text,
        patient_id -> Text,
        assigned_by -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    emergency_grants (id) {
        id -> Text,
        doctor_id -> Text,
        patient_id -> Text,
        reason -> Text,
        granted_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    consultations (id) {
        id -> Text,
        patient_id -> Text,
        doctor_id -> Text,
        occurred_at -> BigInt,
        department -> Text,
        block -> Text,
        unit -> Text,
        diagnosis -> Text,
        notes -> Text,
        prescription -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    medical_files (id) {
        id -> Text,
        patient_id -> Text,
        uploaded_by -> Text,
        category -> Text,
        description -> Text,
        taken_on -> Text,
        file_name -> Text,
        content_type -> Text,
        size_bytes -> BigInt,
        sha256 -> Text,
        file_key -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    vaccinations (id) {
        id -> Text,
        patient_id -> Text,
        recorded_by -> Text,
        vaccine -> Text,
        dose_number -> Text,
        given_on -> Text,
        lot -> Text,
        given_by -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    appointments (id) {
        id -> Text,
        patient_id -> Text,
        doctor_id -> Text,
        starts_at -> BigInt,
        reason -> Text,
        status -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    field_visibility (field, level) {
        field -> Text,
        level -> Text,
        mode -> Text,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, sessions, care_assignments, patients);

diesel::table! {
    state_seal (id) {
        id -> BigInt,
        snapshot -> Text,
        mac -> Text,
        sealed_at -> BigInt,
        generation -> BigInt,
    }
}

diesel::table! {
    account_lockouts (account) {
        account -> Text,
        failures -> Text,
        locked_until -> BigInt,
        locks -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    job_leases (name) {
        name -> Text,
        holder -> Text,
        expires_at_ms -> BigInt,
    }
}

diesel::table! {
    wrapped_root_keys (version) {
        version -> BigInt,
        provider -> Text,
        wrapping_key -> Text,
        wrapped -> Binary,
        wrapped_at -> BigInt,
    }
}
