-- GEODE (Nantes Université): the DBAs publish the view CDC_SRC_GRADUATE_CERT, with the
-- canonical columns of docs/sources.md (template: geode_view_template.sql). Binds
-- :date_from (inclusive) and :date_to (exclusive) select on award_date, or on
-- results_status_date when the award date is missing (the row is then reported).
SELECT
  source_system, source_record_key, source_person_id, student_number, ine, birth_name,
  usage_name, first_name_1, first_name_2, first_name_3, sex, birth_date,
  birth_date_is_estimated, born_in_france, birth_department_code, birth_commune_insee,
  birth_city_label, birth_country_code, birth_country_label, nationality_code,
  certification_type, certification_code, diploma_code, diploma_version, diploma_label,
  academic_year, session_code, result_code, mention_code, mention_label, access_mode_code,
  award_date, results_status, results_status_date, last_modified
FROM cdc_src_graduate_cert
WHERE (award_date >= :date_from AND award_date < :date_to)
   OR (award_date IS NULL AND results_status_date >= :date_from
       AND results_status_date < :date_to)
