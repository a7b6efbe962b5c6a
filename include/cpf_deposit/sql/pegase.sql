-- Pégase (DRE replica, PostgreSQL): one row per diploma award, canonical columns of
-- docs/sources.md. Binds :date_from (inclusive) and :date_to (exclusive) select on the
-- deliberation date, or on the authorisation date when it is missing (reported).
-- Only authorised, non-cancelled awards; the certification mapping is applied by the
-- pipeline on diplome.code (no version). The record key is the award's natural key
-- (COC learner, diploma): the DRE documents no surrogate id on apprenant_diplome. Positive result codes and etat_* values come
-- from the institution's nomenclature: check them on the DRE before production.
SELECT
  'PEGASE' AS source_system,
  CAST(ad.id_apprenant AS VARCHAR) || '-' || CAST(ad.id_diplome AS VARCHAR)
    AS source_record_key,
  CAST(ia.id AS VARCHAR) AS source_person_id,
  ia.code_apprenant AS student_number,
  NULLIF(ia.ine_maitre, 'N/A') AS ine,
  idt.nom_naissance AS birth_name,
  NULLIF(ia.nom_usage, idt.nom_naissance) AS usage_name,
  idt.prenom AS first_name_1,
  ia.prenom2 AS first_name_2,
  ia.prenom3 AS first_name_3,
  UPPER(ia.sexe) AS sex,
  ia.date_naissance AS birth_date,
  'N' AS birth_date_is_estimated,
  CASE WHEN ia.code_pays_naissance = '100' THEN 'Y'
       WHEN ia.code_pays_naissance IS NOT NULL THEN 'N' END AS born_in_france,
  CAST(NULL AS VARCHAR) AS birth_department_code,
  ia.code_commune_naissance AS birth_commune_insee,
  ia.libelle_commune_naissance_etranger AS birth_city_label,
  ia.code_pays_naissance AS birth_country_code,
  pn.libelle_long AS birth_country_label,
  ia.code_nationalite AS nationality_code,
  CAST(NULL AS VARCHAR) AS certification_type,
  CAST(NULL AS VARCHAR) AS certification_code,
  d.code AS diploma_code,
  CAST(NULL AS VARCHAR) AS diploma_version,
  d.intitule AS diploma_label,
  CAST(EXTRACT(YEAR FROM de.date_deliberation) AS INTEGER)
    - CASE WHEN EXTRACT(MONTH FROM de.date_deliberation) < 9 THEN 1 ELSE 0 END
    AS academic_year,
  CAST(NULL AS VARCHAR) AS session_code,
  de.resultat AS result_code,
  de.mention AS mention_code,
  CAST(NULL AS VARCHAR) AS mention_label,
  CAST(NULL AS VARCHAR) AS access_mode_code,
  CAST(de.date_deliberation AS DATE) AS award_date,
  de.etat_resultat AS results_status,
  CAST(ad.date_autorisation AS DATE) AS results_status_date,
  CAST(idt.date_modification AS DATE) AS last_modified
FROM schema_coc.apprenant_diplome ad
JOIN schema_coc.diplome d ON d.id = ad.id_diplome
JOIN schema_coc.apprenant ca ON ca.id = ad.id_apprenant
JOIN schema_idt.apprenant ia ON CAST(ia.id AS VARCHAR) = CAST(ca.uuid AS VARCHAR)
LEFT JOIN schema_idt.identite idt ON idt.id = ia.id
LEFT JOIN schema_coc.diplome_evaluation de
  ON de.id_diplome = d.id AND de.id_apprenant = ca.id
LEFT JOIN schema_ref.pays_nationalite pn ON pn.code = ia.code_pays_naissance
WHERE ad.date_autorisation IS NOT NULL
  AND ad.date_annulation_apres_edition IS NULL
  AND (
    (de.date_deliberation >= :date_from AND de.date_deliberation < :date_to)
    OR (de.date_deliberation IS NULL
        AND ad.date_autorisation >= :date_from AND ad.date_autorisation < :date_to)
  )
