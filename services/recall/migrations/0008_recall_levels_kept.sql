-- Recalls issued before 0003 kept no check level and no effectiveness target, and the check has
-- held them to the strictest: level A, 100 %. Record that with each of them, so that every
-- recall states its own level and target, and none is judged by a rule written nowhere.
UPDATE recalls
SET check_level = coalesce(check_level, 'A'), target_percent = coalesce(target_percent, 100)
WHERE check_level IS NULL OR target_percent IS NULL;

ALTER TABLE recalls
    ALTER COLUMN check_level SET NOT NULL,
    ALTER COLUMN target_percent SET NOT NULL;
