-- Tags of IAM users (CreateUser Tags, TagUser, UntagUser): a JSON array of {"Key","Value"},
-- in the order they were added.
ALTER TABLE users ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
