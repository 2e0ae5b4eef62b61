//! Evidence photos: grants over gRPC, uploads by multipart POST as
//! wx.uploadFile sends them, EXIF stripped before storage, attachment to
//! complaints and cases, signed download links, refusals that store
//! nothing, the orphan purge and account deletion. Each runs on both
//! engines against a local folder and a real S3-compatible server.

use std::io::Cursor;
use std::path::PathBuf;

use chrono::Duration;
use huying::proto::v1 as pb;
use image::ImageDecoder;
use tonic::Code;

use crate::helpers::{
    CaseClient, CitizenClient, Engine, Storage, TestApp, code_of, filing, get_case,
    on_both_engines, on_both_engines_and_storages, rid,
};
use crate::validation::violated_fields;

on_both_engines_and_storages!(
    a_photo_travels_from_upload_to_complaint_to_a_signed_link_without_its_exif,
    handling_photos_reach_the_citizen_only_when_made_visible,
    bad_uploads_get_clear_answers_and_store_nothing,
    unattached_uploads_are_purged_after_the_configured_time,
    deleting_an_account_deletes_its_photos,
);

on_both_engines!(server_signed_links_expire_and_cannot_be_altered);

/// Latitude 22°41'24" N, as rationals: what a phone writes into EXIF.
const GPS_LATITUDE: [u32; 6] = [22, 1, 41, 1, 2400, 100];

/// A real JPEG photo with an EXIF block holding a GPS position, as phones
/// write them: APP1 "Exif", a big-endian TIFF header, IFD0 pointing to a
/// GPS IFD with GPSLatitudeRef and GPSLatitude.
fn jpeg_with_gps(width: u32, height: u32) -> Vec<u8> {
    let pixels = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 3) as u8, (y * 5) as u8, 120])
    });
    let mut plain = Vec::new();
    image::DynamicImage::ImageRgb8(pixels)
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut plain, 90,
        ))
        .unwrap();

    let mut tiff: Vec<u8> = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    // IFD0 at 8: one entry, GPSInfo (0x8825, LONG) → the GPS IFD at 26.
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&[0x88, 0x25, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 26]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    // GPS IFD at 26: GPSLatitudeRef "N", GPSLatitude (3 RATIONAL at 56).
    tiff.extend_from_slice(&2u16.to_be_bytes());
    tiff.extend_from_slice(&[0x00, 0x01, 0x00, 0x02, 0, 0, 0, 2, b'N', 0, 0, 0]);
    tiff.extend_from_slice(&[0x00, 0x02, 0x00, 0x05, 0, 0, 0, 3, 0, 0, 0, 56]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    for value in GPS_LATITUDE {
        tiff.extend_from_slice(&value.to_be_bytes());
    }

    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend_from_slice(&tiff);
    let length = u16::try_from(app1.len() + 2).unwrap();
    let mut jpeg = plain[..2].to_vec();
    jpeg.extend_from_slice(&[0xFF, 0xE1]);
    jpeg.extend_from_slice(&length.to_be_bytes());
    jpeg.extend_from_slice(&app1);
    jpeg.extend_from_slice(&plain[2..]);
    jpeg
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::new(width, height))
        .write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
        .unwrap();
    out
}

/// The EXIF block a JPEG decoder finds, if any.
fn exif_of(jpeg: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = image::codecs::jpeg::JpegDecoder::new(Cursor::new(jpeg)).unwrap();
    decoder.exif_metadata().unwrap()
}

fn gps_bytes() -> Vec<u8> {
    GPS_LATITUDE.iter().flat_map(|v| v.to_be_bytes()).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file the storage holds (objects of the S3 server are files too).
fn stored_files(app: &TestApp) -> Vec<PathBuf> {
    let dir = app.files_dir.join("evidence");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "jpg" || ext == "png")
        })
        .collect();
    files.sort();
    files
}

async fn grant(citizen: &mut CitizenClient, content_type: &str, size: usize) -> pb::UploadGrant {
    citizen
        .create_upload(pb::CreateUploadRequest {
            content_type: content_type.to_owned(),
            size_bytes: size as u64,
        })
        .await
        .expect("grants an upload")
        .into_inner()
}

async fn staff_grant(staff: &mut CaseClient, size: usize) -> pb::UploadGrant {
    staff
        .create_upload(pb::CreateUploadRequest {
            content_type: "image/jpeg".to_owned(),
            size_bytes: size as u64,
        })
        .await
        .expect("grants an upload")
        .into_inner()
}

/// What wx.uploadFile sends: multipart/form-data with the caller's form
/// fields and the file, the caller's header added.
async fn post_file(
    url: &str,
    token: Option<&str>,
    field: &str,
    bytes: &[u8],
) -> (u16, serde_json::Value) {
    let boundary = "----huying-test-boundary-7d93";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n现场照片\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; \
             filename=\"wxfile://tmp_1.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());

    let mut request = reqwest::Client::new().post(url).header(
        "content-type",
        format!("multipart/form-data; boundary={boundary}"),
    );
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request
        .body(body)
        .send()
        .await
        .expect("the upload is answered");
    let status = response.status().as_u16();
    let text = response.text().await.expect("the answer has a body");
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("the answer ({status}) is not JSON: {error}: {text:?}"));
    (status, json)
}

async fn upload(url: &str, token: &str, bytes: &[u8]) -> (u16, serde_json::Value) {
    post_file(url, Some(token), "file", bytes).await
}

async fn fetch(url: &str) -> (u16, Vec<u8>) {
    let response = reqwest::get(url).await.expect("the link is answered");
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

async fn citizen_with_token(app: &TestApp, subject: &str) -> (CitizenClient, String) {
    let session = app.sign_in(subject, pb::Role::Citizen, "").await;
    let token = session.session.unwrap().access_token;
    (app.citizen_with_token(&token).await, token)
}

async fn staff_with_token(
    app: &TestApp,
    subject: &str,
    role: pb::Role,
    unit: &str,
) -> (CaseClient, String) {
    let session = app.sign_in(subject, role, unit).await;
    let token = session.session.unwrap().access_token;
    let client = huying::proto::v1::case_service_client::CaseServiceClient::with_interceptor(
        app.channel().await,
        crate::helpers::Bearer::new(&token),
    );
    (client, token)
}

/// Files a complaint with the given photos; returns its id.
async fn file_with_photos(citizen: &mut CitizenClient, photo_ids: Vec<String>) -> String {
    let mut request = filing(&rid());
    request.photo_ids = photo_ids;
    citizen
        .file_complaint(request)
        .await
        .expect("files the complaint")
        .into_inner()
        .complaint
        .unwrap()
        .id
}

async fn citizen_photos(citizen: &mut CitizenClient, id: &str) -> Vec<pb::Photo> {
    citizen
        .list_complaint_photos(pb::ListComplaintPhotosRequest {
            complaint_id: id.to_owned(),
        })
        .await
        .expect("lists the photos")
        .into_inner()
        .photos
}

async fn a_photo_travels_from_upload_to_complaint_to_a_signed_link_without_its_exif(
    engine: Engine,
    storage: Storage,
) {
    let app = TestApp::spawn_storing(engine, storage, |_| {}).await;
    let (mut alice, token) = citizen_with_token(&app, "alice").await;
    let original = jpeg_with_gps(48, 32);
    assert!(exif_of(&original).is_some_and(|exif| contains(&exif, &gps_bytes())));

    let granted = grant(&mut alice, "image/jpeg", original.len()).await;
    assert_eq!(granted.file_field, "file");
    assert_eq!(granted.max_bytes, original.len() as u64);
    let (status, answer) = upload(&granted.upload_url, &token, &original).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["upload_id"], granted.upload_id.as_str());
    assert_eq!(
        (answer["width"].as_u64(), answer["height"].as_u64()),
        (Some(48), Some(32))
    );

    // What storage holds is a clean JPEG: no EXIF block, no GPS bytes.
    let files = stored_files(&app);
    assert_eq!(files.len(), 1, "{files:?}");
    let stored = std::fs::read(&files[0]).unwrap();
    assert_eq!(&stored[..3], &[0xFF, 0xD8, 0xFF]);
    assert_eq!(exif_of(&stored), None);
    assert!(!contains(&stored, b"Exif\0\0"));
    assert!(!contains(&stored, &gps_bytes()));

    let id = file_with_photos(&mut alice, vec![granted.upload_id.clone()]).await;
    let photos = citizen_photos(&mut alice, &id).await;
    assert_eq!(photos.len(), 1);
    let photo = &photos[0];
    assert_eq!(photo.upload_id, granted.upload_id);
    assert_eq!(photo.stage(), pb::PhotoStage::Report);
    assert_eq!(photo.content_type, "image/jpeg");
    match storage {
        Storage::Local => assert!(photo.download_url.contains("/files/up_")),
        Storage::S3 => assert!(photo.download_url.contains("X-Amz-Signature=")),
    }
    let (status, downloaded) = fetch(&photo.download_url).await;
    assert_eq!(status, 200);
    assert_eq!(downloaded, stored);

    // The same photo shows to staff in scope, never to another citizen.
    let mut dispatcher = app.dispatcher().await;
    let staff_view = dispatcher
        .list_case_photos(pb::ListComplaintPhotosRequest {
            complaint_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(staff_view.photos.len(), 1);
    let mut bob = app.citizen("bob").await;
    let refused = bob
        .list_complaint_photos(pb::ListComplaintPhotosRequest {
            complaint_id: id.clone(),
        })
        .await;
    assert_eq!(code_of(refused), Code::NotFound);

    // The upload is spent: a second complaint cannot take it.
    let mut again = filing(&rid());
    again.photo_ids = vec![granted.upload_id];
    let status = alice.file_complaint(again).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["photo_ids[0]"]);
}

/// Accepts and dispatches a complaint to `unit`.
async fn dispatch_to(app: &TestApp, id: &str, unit: &str) {
    let mut dispatcher = app.dispatcher().await;
    let case = get_case(&mut dispatcher, id).await;
    let case = dispatcher
        .accept_for_filing(pb::AcceptForFilingRequest {
            request_id: rid(),
            complaint_id: id.to_owned(),
            expected_version: case.version,
        })
        .await
        .unwrap()
        .into_inner();
    dispatcher
        .dispatch_case(pb::DispatchCaseRequest {
            request_id: rid(),
            complaint_id: id.to_owned(),
            expected_version: case.version,
            lead_unit_id: unit.to_owned(),
            co_unit_ids: vec![],
        })
        .await
        .unwrap();
}

async fn handling_photos_reach_the_citizen_only_when_made_visible(
    engine: Engine,
    storage: Storage,
) {
    let app = TestApp::spawn_storing(engine, storage, |_| {}).await;
    let (mut alice, alice_token) = citizen_with_token(&app, "alice").await;
    let report = jpeg_with_gps(16, 16);
    let report_grant = grant(&mut alice, "image/jpeg", report.len()).await;
    assert_eq!(
        upload(&report_grant.upload_url, &alice_token, &report)
            .await
            .0,
        201
    );
    let id = file_with_photos(&mut alice, vec![report_grant.upload_id.clone()]).await;

    let unit = "sd:pingshan/municipal";
    dispatch_to(&app, &id, unit).await;
    let (mut handler, handler_token) =
        staff_with_token(&app, "handler-1", pb::Role::Handler, unit).await;
    let photo = jpeg_with_gps(24, 24);
    let before = staff_grant(&mut handler, photo.len()).await;
    let after = staff_grant(&mut handler, photo.len()).await;
    for granted in [&before, &after] {
        assert_eq!(
            upload(&granted.upload_url, &handler_token, &photo).await.0,
            201
        );
    }

    let attach =
        |upload_id: &str, stage: pb::PhotoStage, visible: bool| pb::AttachHandlingPhotosRequest {
            complaint_id: id.clone(),
            upload_ids: vec![upload_id.to_owned()],
            stage: stage.into(),
            visible_to_citizen: visible,
        };
    app.clock.advance(Duration::minutes(1));
    handler
        .attach_handling_photos(attach(&before.upload_id, pb::PhotoStage::Before, false))
        .await
        .unwrap();
    app.clock.advance(Duration::minutes(1));
    let request = attach(&after.upload_id, pb::PhotoStage::After, true);
    handler
        .attach_handling_photos(request.clone())
        .await
        .unwrap();
    // A retry changes nothing.
    let listed = handler
        .attach_handling_photos(request)
        .await
        .unwrap()
        .into_inner()
        .photos;
    let stages: Vec<_> = listed.iter().map(|p| p.stage()).collect();
    assert_eq!(
        stages,
        [
            pb::PhotoStage::Report,
            pb::PhotoStage::Before,
            pb::PhotoStage::After
        ]
    );
    assert_eq!(listed[2].unit_id, unit);

    // The citizen sees their own photo and the after photo, not the before.
    let seen: Vec<_> = citizen_photos(&mut alice, &id)
        .await
        .into_iter()
        .map(|p| p.upload_id)
        .collect();
    assert_eq!(
        seen,
        [report_grant.upload_id.clone(), after.upload_id.clone()]
    );
    for photo in citizen_photos(&mut alice, &id).await {
        let (status, bytes) = fetch(&photo.download_url).await;
        assert_eq!(status, 200);
        assert_eq!(exif_of(&bytes), None);
    }

    // A handler of another unit reaches neither the case nor its photos,
    // and cannot attach their own uploads to it.
    let (mut outsider, outsider_token) =
        staff_with_token(&app, "handler-2", pb::Role::Handler, "dept:ps_water").await;
    let listed = outsider
        .list_case_photos(pb::ListComplaintPhotosRequest {
            complaint_id: id.clone(),
        })
        .await;
    assert_eq!(code_of(listed), Code::NotFound);
    let theirs = staff_grant(&mut outsider, photo.len()).await;
    assert_eq!(
        upload(&theirs.upload_url, &outsider_token, &photo).await.0,
        201
    );
    let refused = outsider
        .attach_handling_photos(attach(&theirs.upload_id, pb::PhotoStage::After, true))
        .await;
    assert_eq!(code_of(refused), Code::NotFound);

    // Nor can a handler attach someone else's upload, or a citizen's.
    let refused = handler
        .attach_handling_photos(attach(&theirs.upload_id, pb::PhotoStage::After, true))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["upload_ids[0]"]);
    let refused = handler
        .attach_handling_photos(attach(&report_grant.upload_id, pb::PhotoStage::After, true))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["upload_ids[0]"]);
}

async fn bad_uploads_get_clear_answers_and_store_nothing(engine: Engine, storage: Storage) {
    let app = TestApp::spawn_storing(engine, storage, |config| {
        config.uploads.max_pixels = 64 * 64;
    })
    .await;
    let (mut alice, alice_token) = citizen_with_token(&app, "alice").await;
    let (mut bob, bob_token) = citizen_with_token(&app, "bob").await;
    let photo = jpeg_with_gps(16, 16);

    // Grants are refused for types and sizes the server does not take.
    let refused = alice
        .create_upload(pb::CreateUploadRequest {
            content_type: "application/pdf".to_owned(),
            size_bytes: 20 * 1024 * 1024,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["content_type", "size_bytes"]);

    // More bytes than granted.
    let small = grant(&mut alice, "image/jpeg", photo.len() - 1).await;
    let (status, answer) = upload(&small.upload_url, &alice_token, &photo).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("FILE_TOO_LARGE"))
    );

    // Called a JPEG, but it is not one; or it is a PNG.
    let fake = b"<html><body>not a photo at all</body></html>".to_vec();
    let granted = grant(&mut alice, "image/jpeg", fake.len()).await;
    let (status, answer) = upload(&granted.upload_url, &alice_token, &fake).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (415, Some("NOT_AN_IMAGE"))
    );
    let png = png(8, 8);
    let granted = grant(&mut alice, "image/jpeg", png.len()).await;
    let (status, answer) = upload(&granted.upload_url, &alice_token, &png).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (415, Some("WRONG_IMAGE_TYPE"))
    );

    // Starts like a JPEG and is not; or too many pixels.
    let mut broken = photo.clone();
    broken.truncate(200);
    let granted = grant(&mut alice, "image/jpeg", broken.len()).await;
    let (status, answer) = upload(&granted.upload_url, &alice_token, &broken).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("IMAGE_UNDECODABLE"))
    );
    let huge = jpeg_with_gps(65, 64);
    let granted = grant(&mut alice, "image/jpeg", huge.len()).await;
    let (status, answer) = upload(&granted.upload_url, &alice_token, &huge).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("TOO_MANY_PIXELS"))
    );

    // Another citizen's grant, no sign-in, no file field.
    let alices = grant(&mut alice, "image/jpeg", photo.len()).await;
    let (status, answer) = upload(&alices.upload_url, &bob_token, &photo).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("UPLOAD_NOT_FOUND"))
    );
    let (status, _) = post_file(&alices.upload_url, None, "file", &photo).await;
    assert_eq!(status, 401);
    let (status, answer) = post_file(&alices.upload_url, Some(&alice_token), "photo", &photo).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("BAD_FORM"))
    );

    // An expired grant.
    let expiring = grant(&mut alice, "image/jpeg", photo.len()).await;
    app.clock.advance(Duration::minutes(11));
    let (status, answer) = upload(&expiring.upload_url, &alice_token, &photo).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (410, Some("UPLOAD_EXPIRED"))
    );
    assert!(stored_files(&app).is_empty(), "{:?}", stored_files(&app));

    // A grant used once is spent.
    let once = grant(&mut alice, "image/jpeg", photo.len()).await;
    assert_eq!(upload(&once.upload_url, &alice_token, &photo).await.0, 201);
    let (status, answer) = upload(&once.upload_url, &alice_token, &photo).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("UPLOAD_ALREADY_USED"))
    );
    assert_eq!(stored_files(&app).len(), 1);

    // Bob cannot file with Alice's photo, nor anyone with one never sent.
    let mut request = filing(&rid());
    request.photo_ids = vec![once.upload_id.clone()];
    let refused = bob.file_complaint(request).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["photo_ids[0]"]);
    let mut request = filing(&rid());
    request.photo_ids = vec![alices.upload_id.clone(), "up_unknown".to_owned()];
    let refused = alice.file_complaint(request).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["photo_ids[0]", "photo_ids[1]"]);
    let listed = bob
        .list_my_complaints(pb::ListMyComplaintsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.complaints.is_empty());
    let listed = alice
        .list_my_complaints(pb::ListMyComplaintsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.complaints.is_empty());
    assert_eq!(stored_files(&app).len(), 1);
}

async fn unattached_uploads_are_purged_after_the_configured_time(engine: Engine, storage: Storage) {
    let app = TestApp::spawn_storing(engine, storage, |config| {
        config.uploads.orphan_after = Duration::hours(6);
    })
    .await;
    let (mut alice, token) = citizen_with_token(&app, "alice").await;
    let photo = jpeg_with_gps(16, 16);
    let kept = grant(&mut alice, "image/jpeg", photo.len()).await;
    let orphan = grant(&mut alice, "image/jpeg", photo.len()).await;
    let _never_used = grant(&mut alice, "image/jpeg", photo.len()).await;
    for granted in [&kept, &orphan] {
        assert_eq!(upload(&granted.upload_url, &token, &photo).await.0, 201);
    }
    let id = file_with_photos(&mut alice, vec![kept.upload_id.clone()]).await;
    let purger = app.app.as_ref().unwrap();

    app.clock.advance(Duration::hours(5));
    assert_eq!(purger.purge_uploads().await.unwrap(), 0);
    assert_eq!(stored_files(&app).len(), 2);

    app.clock.advance(Duration::hours(2));
    assert_eq!(purger.purge_uploads().await.unwrap(), 2);
    let files = stored_files(&app);
    assert_eq!(files.len(), 1);
    assert!(files[0].to_string_lossy().contains(&kept.upload_id));
    let store = app.store();
    assert!(store.upload(&orphan.upload_id).await.unwrap().is_none());
    // Hours later, a fresh session.
    let (mut alice, _) = citizen_with_token(&app, "alice").await;
    assert_eq!(citizen_photos(&mut alice, &id).await.len(), 1);

    // The purged upload can no longer be attached.
    let mut request = filing(&rid());
    request.photo_ids = vec![orphan.upload_id];
    let refused = alice.file_complaint(request).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["photo_ids[0]"]);
}

async fn deleting_an_account_deletes_its_photos(engine: Engine, storage: Storage) {
    let app = TestApp::spawn_storing(engine, storage, |_| {}).await;
    let (mut alice, token) = citizen_with_token(&app, "alice").await;
    let (mut bob, bob_token) = citizen_with_token(&app, "bob").await;
    let photo = jpeg_with_gps(16, 16);
    let attached = grant(&mut alice, "image/jpeg", photo.len()).await;
    let loose = grant(&mut alice, "image/jpeg", photo.len()).await;
    let bobs = grant(&mut bob, "image/jpeg", photo.len()).await;
    for (granted, token) in [(&attached, &token), (&loose, &token), (&bobs, &bob_token)] {
        assert_eq!(upload(&granted.upload_url, token, &photo).await.0, 201);
    }
    let id = file_with_photos(&mut alice, vec![attached.upload_id.clone()]).await;
    let bobs_complaint = file_with_photos(&mut bob, vec![bobs.upload_id.clone()]).await;
    let link = citizen_photos(&mut alice, &id).await[0]
        .download_url
        .clone();
    assert_eq!(stored_files(&app).len(), 3);

    alice
        .delete_my_account(pb::DeleteMyAccountRequest {
            confirmation: "DELETE MY ACCOUNT".to_owned(),
        })
        .await
        .unwrap();

    // Alice's files are gone from storage; Bob's stays.
    let files = stored_files(&app);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_string_lossy().contains(&bobs.upload_id));
    let mut dispatcher = app.dispatcher().await;
    let case = get_case(&mut dispatcher, &id).await;
    assert!(case.complaint.unwrap().photo_ids.is_empty());
    let listed = dispatcher
        .list_case_photos(pb::ListComplaintPhotosRequest {
            complaint_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.photos.is_empty());
    assert_ne!(fetch(&link).await.0, 200);
    assert_eq!(citizen_photos(&mut bob, &bobs_complaint).await.len(), 1);
}

async fn server_signed_links_expire_and_cannot_be_altered(engine: Engine) {
    let app = TestApp::spawn_storing(engine, Storage::Local, |_| {}).await;
    let (mut alice, token) = citizen_with_token(&app, "alice").await;
    let photo = jpeg_with_gps(16, 16);
    let first = grant(&mut alice, "image/jpeg", photo.len()).await;
    let second = grant(&mut alice, "image/jpeg", photo.len()).await;
    for granted in [&first, &second] {
        assert_eq!(upload(&granted.upload_url, &token, &photo).await.0, 201);
    }
    let id = file_with_photos(&mut alice, vec![first.upload_id.clone()]).await;
    let link = citizen_photos(&mut alice, &id).await[0]
        .download_url
        .clone();
    assert_eq!(fetch(&link).await.0, 200);

    // Another file under the same signature, a later expiry, a changed
    // signature, no signature: all refused.
    let other = link.replace(&first.upload_id, &second.upload_id);
    assert_eq!(fetch(&other).await.0, 404);
    let (base, query) = link.split_once('?').unwrap();
    let expires: i64 = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("expires="))
        .unwrap()
        .parse()
        .unwrap();
    let later = link.replace(
        &format!("expires={expires}"),
        &format!("expires={}", expires + 3600),
    );
    assert_eq!(fetch(&later).await.0, 404);
    let flipped = if link.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &link[..link.len() - 1]);
    assert_eq!(fetch(&tampered).await.0, 404);
    assert_eq!(fetch(base).await.0, 404);

    // After five minutes the link is dead; a new listing gives a new one.
    app.clock.advance(Duration::minutes(5));
    assert_eq!(fetch(&link).await.0, 410);
    let fresh = citizen_photos(&mut alice, &id).await[0]
        .download_url
        .clone();
    assert_eq!(fetch(&fresh).await.0, 200);
}
