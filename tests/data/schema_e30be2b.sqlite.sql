-- Schema of aigc-apps 0.1.0 (commit e30be2b) on sqlite, as its create_all made it.

-- Generated from that commit's models; a fixture for tests/test_migrations.py.

CREATE TABLE aigc_adapters (
	name VARCHAR(200) NOT NULL, 
	path TEXT NOT NULL, 
	base_model TEXT NOT NULL, 
	task VARCHAR(32) NOT NULL, 
	data_hash VARCHAR(64) NOT NULL, 
	metrics TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (name)
);

CREATE TABLE support_intents (
	id INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	answer TEXT, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);

CREATE TABLE support_sessions (
	id VARCHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	handoff BOOLEAN NOT NULL, 
	PRIMARY KEY (id)
);

CREATE TABLE support_settings (
	"key" VARCHAR(100) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);

CREATE TABLE support_sources (
	id INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	uri VARCHAR(1000) NOT NULL, 
	title VARCHAR(500), 
	content_hash VARCHAR(64) NOT NULL, 
	ingested_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (kind, uri)
);

CREATE TABLE support_entries (
	id INTEGER NOT NULL, 
	source_id INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	intent_id INTEGER, 
	text TEXT NOT NULL, 
	answer TEXT, 
	title VARCHAR(500), 
	position INTEGER NOT NULL, 
	content_hash VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (source_id, content_hash), 
	FOREIGN KEY(source_id) REFERENCES support_sources (id) ON DELETE CASCADE, 
	FOREIGN KEY(intent_id) REFERENCES support_intents (id) ON DELETE SET NULL
);

CREATE INDEX ix_support_entries_intent_id ON support_entries (intent_id);

CREATE TABLE support_turns (
	id INTEGER NOT NULL, 
	session_id VARCHAR(32) NOT NULL, 
	number INTEGER NOT NULL, 
	question TEXT NOT NULL, 
	answer TEXT NOT NULL, 
	path VARCHAR(16) NOT NULL, 
	intent VARCHAR(200), 
	confidence FLOAT NOT NULL, 
	retrieved_ids TEXT NOT NULL, 
	latency_ms FLOAT NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (session_id, number), 
	FOREIGN KEY(session_id) REFERENCES support_sessions (id) ON DELETE CASCADE
);

CREATE TABLE support_feedback (
	id INTEGER NOT NULL, 
	turn_id INTEGER NOT NULL, 
	good BOOLEAN NOT NULL, 
	correct_answer TEXT, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(turn_id) REFERENCES support_turns (id) ON DELETE CASCADE
);

CREATE TABLE sentiment_alerts (
	id INTEGER NOT NULL, 
	topic VARCHAR(200) NOT NULL, 
	signals VARCHAR(100) NOT NULL, 
	bucket_start DATETIME NOT NULL, 
	bucket_seconds INTEGER NOT NULL, 
	count INTEGER NOT NULL, 
	negative_share FLOAT NOT NULL, 
	baseline_share FLOAT NOT NULL, 
	baseline_count FLOAT NOT NULL, 
	z_share FLOAT NOT NULL, 
	z_volume FLOAT NOT NULL, 
	message TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	webhook_status VARCHAR(200), 
	PRIMARY KEY (id), 
	CONSTRAINT uq_sentiment_alerts_bucket UNIQUE (topic, bucket_start)
);

CREATE TABLE sentiment_records (
	id INTEGER NOT NULL, 
	source VARCHAR(200) NOT NULL, 
	ext_id VARCHAR(500), 
	url TEXT, 
	text TEXT NOT NULL, 
	text_hash VARCHAR(64) NOT NULL, 
	truncated BOOLEAN NOT NULL, 
	ts DATETIME NOT NULL, 
	ingested_at DATETIME NOT NULL, 
	label VARCHAR(32) NOT NULL, 
	p_negative FLOAT NOT NULL, 
	p_neutral FLOAT NOT NULL, 
	p_positive FLOAT NOT NULL, 
	score FLOAT NOT NULL, 
	model VARCHAR(200) NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_sentiment_records_text UNIQUE (source, text_hash), 
	CONSTRAINT uq_sentiment_records_ext_id UNIQUE (ext_id)
);

CREATE INDEX ix_sentiment_records_ts ON sentiment_records (ts);

CREATE TABLE sentiment_topics (
	name VARCHAR(200) NOT NULL, 
	keywords_json TEXT NOT NULL, 
	rule_json TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (name)
);

CREATE TABLE sentiment_record_topics (
	record_id INTEGER NOT NULL, 
	topic VARCHAR(200) NOT NULL, 
	method VARCHAR(32) NOT NULL, 
	similarity FLOAT NOT NULL, 
	PRIMARY KEY (record_id, topic), 
	FOREIGN KEY(record_id) REFERENCES sentiment_records (id) ON DELETE CASCADE
);

CREATE INDEX ix_sentiment_record_topics_topic ON sentiment_record_topics (topic);

CREATE TABLE rec_items (
	id VARCHAR(200) NOT NULL, 
	title TEXT NOT NULL, 
	description TEXT NOT NULL, 
	tags TEXT NOT NULL, 
	extra TEXT NOT NULL, 
	content_hash VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);

CREATE TABLE rec_models (
	id INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	path TEXT NOT NULL, 
	n_items INTEGER NOT NULL, 
	n_users INTEGER NOT NULL, 
	n_events INTEGER NOT NULL, 
	train_seconds FLOAT NOT NULL, 
	info TEXT NOT NULL, 
	PRIMARY KEY (id)
);

CREATE TABLE rec_events (
	id INTEGER NOT NULL, 
	user_id VARCHAR(200) NOT NULL, 
	item_id VARCHAR(200) NOT NULL, 
	type VARCHAR(40) NOT NULL, 
	weight FLOAT NOT NULL, 
	rating FLOAT, 
	ts FLOAT NOT NULL, 
	dedup_key VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(item_id) REFERENCES rec_items (id) ON DELETE CASCADE, 
	UNIQUE (dedup_key)
);

CREATE INDEX ix_rec_events_item_id ON rec_events (item_id);

CREATE INDEX ix_rec_events_user_id ON rec_events (user_id);

CREATE INDEX ix_rec_events_user_ts ON rec_events (user_id, ts);

CREATE TABLE aigc_schema_versions (
	app VARCHAR(64) NOT NULL, 
	version INTEGER NOT NULL, 
	applied_at DATETIME NOT NULL, 
	PRIMARY KEY (app, version)
);

INSERT INTO aigc_schema_versions (app, version, applied_at) VALUES ('registry', 0, '2026-11-23 10:00:00+00'), ('support', 0, '2026-11-23 10:00:00+00'), ('sentiment', 1, '2026-11-23 10:00:00+00'), ('recommender', 0, '2026-11-23 10:00:00+00');
