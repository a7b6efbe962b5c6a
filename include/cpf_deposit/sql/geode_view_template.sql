-- Template of the GEODE view read by cpf-deposit (geode.sql). To be completed by the
-- Nantes DBAs over ScolarG (identity) and Tigre (juries, diplomas): replace each
-- "-- source:" placeholder by the real expression. Contract (docs/sources.md):
--   * one row per (person, certification award), published final results only;
--   * civil-status names, first names and sex (never the usage first name);
--   * award_date NULL when unknown: never a substitute date;
--   * no NIR column;
--   * certification_type/certification_code may stay NULL: the pipeline then applies
--     the certification mapping on (diploma_code, diploma_version, academic_year).
CREATE OR REPLACE VIEW cdc_src_graduate_cert AS
SELECT
  CAST('GEODE' AS VARCHAR2(10))   AS source_system,        -- constant
  CAST(NULL AS VARCHAR2(100))     AS source_record_key,    -- source: stable award key
  CAST(NULL AS VARCHAR2(40))      AS source_person_id,     -- source: ScolarG person id
  CAST(NULL AS VARCHAR2(20))      AS student_number,       -- source: student number
  CAST(NULL AS VARCHAR2(11))      AS ine,                  -- source: INE or NULL
  CAST(NULL AS VARCHAR2(100))     AS birth_name,           -- source: nom de naissance
  CAST(NULL AS VARCHAR2(100))     AS usage_name,           -- source: NULL if = birth_name
  CAST(NULL AS VARCHAR2(60))      AS first_name_1,         -- source: civil first name 1
  CAST(NULL AS VARCHAR2(60))      AS first_name_2,         -- source: civil first name 2
  CAST(NULL AS VARCHAR2(60))      AS first_name_3,         -- source: civil first name 3
  CAST(NULL AS CHAR(1))           AS sex,                  -- source: M/F civil status
  CAST(NULL AS DATE)              AS birth_date,           -- source
  CAST('N' AS CHAR(1))            AS birth_date_is_estimated, -- source: Y when estimated
  CAST(NULL AS CHAR(1))           AS born_in_france,       -- source: Y/N/NULL
  CAST(NULL AS VARCHAR2(3))       AS birth_department_code, -- source: 057, 02A, 971
  CAST(NULL AS VARCHAR2(5))       AS birth_commune_insee,  -- source: INSEE code or NULL
  CAST(NULL AS VARCHAR2(100))     AS birth_city_label,     -- source: free text
  CAST(NULL AS VARCHAR2(3))       AS birth_country_code,   -- source: 3 digits, 100 France
  CAST(NULL AS VARCHAR2(100))     AS birth_country_label,  -- source
  CAST(NULL AS VARCHAR2(3))       AS nationality_code,     -- source
  CAST(NULL AS VARCHAR2(4))       AS certification_type,   -- RNCP/RS, or NULL (mapping)
  CAST(NULL AS VARCHAR2(20))      AS certification_code,   -- digits, or NULL (mapping)
  CAST(NULL AS VARCHAR2(20))      AS diploma_code,         -- source: Tigre diploma code
  CAST(NULL AS VARCHAR2(10))      AS diploma_version,      -- source: version or NULL
  CAST(NULL AS VARCHAR2(200))     AS diploma_label,        -- source
  CAST(NULL AS INTEGER)           AS academic_year,        -- source: start year
  CAST(NULL AS VARCHAR2(2))       AS session_code,         -- source
  CAST(NULL AS VARCHAR2(10))      AS result_code,          -- source: positive code
  CAST(NULL AS VARCHAR2(10))      AS mention_code,         -- source: local honours code
  CAST(NULL AS VARCHAR2(100))     AS mention_label,        -- source
  CAST(NULL AS VARCHAR2(40))      AS access_mode_code,     -- source: régime d'inscription
  CAST(NULL AS DATE)              AS award_date,           -- source: date of obtention
  CAST(NULL AS VARCHAR2(2))       AS results_status,       -- source: publication state
  CAST(NULL AS DATE)              AS results_status_date,  -- source: publication date
  CAST(NULL AS DATE)              AS last_modified         -- source: latest change
FROM dual
WHERE 1 = 0
