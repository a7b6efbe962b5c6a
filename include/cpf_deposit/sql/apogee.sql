-- Apogée (Oracle): one row per certification award, in the canonical columns of
-- docs/sources.md. Read at run time by cpf_deposit.sources; transpiled by sqlglot
-- for SQLite (demo, tests) and PostgreSQL. Binds: :date_from (inclusive) and
-- :date_to (exclusive) select awards by DAT_OBT_VDI, or by the jury publication
-- date DAT_AVC_VDI when DAT_OBT_VDI is missing (so that row is reported, not lost).
-- Rules:
--   * positive results by TYP_RESULTAT.COD_NEG_TRE = 1 (never a hard-coded 'ADM');
--   * final admission only (COD_ADM = '1'), published juries only (ETA_AVC_VDI = 'T');
--   * one award per person and diploma version: the first session passed;
--   * civil-status first name and sex when TEM_PR_USAGE = 'O';
--   * the NIR (COD_NNI_ETU, COD_CLE_NNI_ETU) comes last, as nir_number and nir_key,
--     for the identity cross-check only: the extraction derives facts from it
--     (sex, birth month and year, birthplace) and drops it; it is never written.
-- The RNCP/RS code is not here: the pipeline applies the certification mapping.
WITH passed AS (
  SELECT r.cod_ind, r.cod_dip, r.cod_vrs_vdi, r.cod_anu, r.cod_ses, r.cod_tre,
         r.cod_men, r.dat_obt_vdi, r.dat_mod_vdi, g.eta_avc_vdi, g.dat_avc_vdi,
         ROW_NUMBER() OVER (
           PARTITION BY r.cod_ind, r.cod_dip, r.cod_vrs_vdi
           ORDER BY r.cod_anu, r.cod_ses
         ) AS pass_rank
  FROM resultat_vdi r
  JOIN typ_resultat t
    ON t.cod_tre = r.cod_tre
  JOIN grp_resultat_vdi g
    ON g.cod_dip = r.cod_dip
   AND g.cod_vrs_vdi = r.cod_vrs_vdi
   AND g.cod_anu = r.cod_anu
   AND g.cod_ses = r.cod_ses
   AND g.cod_adm = r.cod_adm
  WHERE t.cod_neg_tre = 1
    AND r.cod_adm = '1'
    AND g.eta_avc_vdi = 'T'
)
SELECT
  'APOGEE' AS source_system,
  CAST(p.cod_ind AS VARCHAR2(20)) || '-' || p.cod_dip || '-'
    || CAST(p.cod_vrs_vdi AS VARCHAR2(3)) AS source_record_key,
  CAST(i.cod_ind AS VARCHAR2(20)) AS source_person_id,
  CAST(i.cod_etu AS VARCHAR2(20)) AS student_number,
  CASE WHEN i.cod_nne_ind IS NOT NULL THEN i.cod_nne_ind || i.cod_cle_nne_ind END AS ine,
  i.lib_nom_pat_ind AS birth_name,
  CASE WHEN i.lib_nom_usu_ind = i.lib_nom_pat_ind THEN NULL ELSE i.lib_nom_usu_ind END
    AS usage_name,
  CASE WHEN i.tem_pr_usage = 'O' AND i.lib_pr_eta_civ IS NOT NULL
       THEN i.lib_pr_eta_civ ELSE i.lib_pr1_ind END AS first_name_1,
  i.lib_pr2_ind AS first_name_2,
  i.lib_pr3_ind AS first_name_3,
  UPPER(CASE WHEN i.tem_pr_usage = 'O' AND i.cod_sex_eta_civ IS NOT NULL
             THEN i.cod_sex_eta_civ ELSE i.cod_sex_etu END) AS sex,
  i.date_nai_ind AS birth_date,
  CASE WHEN i.tem_date_nai_rel = 'N' THEN 'Y' ELSE 'N' END AS birth_date_is_estimated,
  CASE i.cod_typ_dep_pay_nai WHEN 'D' THEN 'Y' WHEN 'P' THEN 'N' END AS born_in_france,
  CASE WHEN i.cod_typ_dep_pay_nai = 'D' THEN i.cod_dep_pay_nai END AS birth_department_code,
  CASE WHEN i.cod_typ_dep_pay_nai = 'D' THEN i.cod_com_nai_etu END AS birth_commune_insee,
  i.lib_vil_nai_etu AS birth_city_label,
  CASE i.cod_typ_dep_pay_nai WHEN 'P' THEN i.cod_dep_pay_nai WHEN 'D' THEN '100' END
    AS birth_country_code,
  pn.lib_pay AS birth_country_label,
  i.cod_pay_nat AS nationality_code,
  CAST(NULL AS VARCHAR2(4)) AS certification_type,
  CAST(NULL AS VARCHAR2(20)) AS certification_code,
  p.cod_dip AS diploma_code,
  CAST(p.cod_vrs_vdi AS VARCHAR2(3)) AS diploma_version,
  NVL(v.lib_web_vdi, d.lib_dip) AS diploma_label,
  CAST(p.cod_anu AS INTEGER) AS academic_year,
  p.cod_ses AS session_code,
  p.cod_tre AS result_code,
  p.cod_men AS mention_code,
  m.lib_men AS mention_label,
  CAST(NULL AS VARCHAR2(40)) AS access_mode_code,
  p.dat_obt_vdi AS award_date,
  p.eta_avc_vdi AS results_status,
  p.dat_avc_vdi AS results_status_date,
  CASE WHEN NVL(p.dat_mod_vdi, i.dat_mod_ind) IS NULL THEN i.dat_mod_ind
       WHEN i.dat_mod_ind IS NULL OR p.dat_mod_vdi > i.dat_mod_ind THEN p.dat_mod_vdi
       ELSE i.dat_mod_ind END AS last_modified,
  i.cod_nni_etu AS nir_number,
  i.cod_cle_nni_etu AS nir_key
FROM passed p
JOIN individu i
  ON i.cod_ind = p.cod_ind
JOIN version_diplome v
  ON v.cod_dip = p.cod_dip
 AND v.cod_vrs_vdi = p.cod_vrs_vdi
JOIN diplome d
  ON d.cod_dip = p.cod_dip
LEFT JOIN mention m
  ON m.cod_men = p.cod_men
LEFT JOIN pays pn
  ON i.cod_typ_dep_pay_nai = 'P'
 AND pn.cod_pay = i.cod_dep_pay_nai
WHERE p.pass_rank = 1
  AND (
    (p.dat_obt_vdi >= :date_from AND p.dat_obt_vdi < :date_to)
    OR (p.dat_obt_vdi IS NULL AND p.dat_avc_vdi >= :date_from AND p.dat_avc_vdi < :date_to)
  )

