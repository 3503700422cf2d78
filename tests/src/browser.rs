//! A cookie-keeping HTTP client that reads forms as a browser would: hidden fields (the CSRF
//! token included) are taken from the page, and redirects are followed by the test, step by
//! step, so that every `Location` can be inspected.

use reqwest::header::HeaderMap;

/// One response, read whole.
#[derive(Debug)]
pub struct Page {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub body: String,
}

impl Page {
    /// The `Location` header.
    pub fn location(&self) -> Option<String> {
        self.header("location")
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The `name`/`value` of every `<input>` of the page that has both, HTML entities
    /// decoded.
    pub fn inputs(&self) -> Vec<(String, String)> {
        inputs_of(&self.body)
    }

    /// The value of input `name`.
    pub fn input(&self, name: &str) -> Option<String> {
        self.inputs()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The fields a browser would submit with the form that posts to `action` (its hidden
    /// fields, among them the CSRF token, and any prefilled input); empty if there is none.
    pub fn form(&self, action: &str) -> Vec<(String, String)> {
        let marker = format!("action=\"{action}\"");
        for part in self.body.split("<form").skip(1) {
            let tag = part.split('>').next().unwrap_or("");
            if tag.contains(&marker) {
                let inner = part.split("</form>").next().unwrap_or("");
                return inputs_of(inner)
                    .into_iter()
                    .filter(|(_, value)| !value.is_empty())
                    .collect();
            }
        }
        Vec::new()
    }
}

fn inputs_of(html: &str) -> Vec<(String, String)> {
    let mut inputs = Vec::new();
    for tag in html.split("<input").skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        if let (Some(name), Some(value)) = (attribute(tag, "name"), attribute(tag, "value")) {
            inputs.push((name, value));
        }
    }
    inputs
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// Decodes HTML character references: the named ones askama writes and numeric ones.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|end| *end <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A browser: one cookie jar, no automatic redirects.
pub struct Browser {
    client: reqwest::Client,
    base: String,
}

impl Browser {
    /// A fresh browser (empty cookie jar) for the server at `base`.
    pub fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            base: base.to_owned(),
        }
    }

    fn absolute(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    /// GET a path (or an absolute URL on this server).
    pub async fn get(&self, path: &str) -> Page {
        let response = self
            .client
            .get(self.absolute(path))
            .send()
            .await
            .expect("GET");
        read(response).await
    }

    /// Signs in through the sign-in page at `sign_in_location` (where the server sent us);
    /// returns where sign-in leads.
    pub async fn sign_in(&self, sign_in_location: &str, login: &str, password: &str) -> Page {
        let page = self.get(sign_in_location).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("Sign in"));
        let mut fields = page.form("/users/sign_in");
        fields.retain(|(name, _)| name != "login");
        fields.push(("login".into(), login.into()));
        fields.push(("password".into(), password.into()));
        self.post("/users/sign_in", &fields).await
    }

    /// POST a form.
    pub async fn post(&self, path: &str, fields: &[(String, String)]) -> Page {
        let response = self
            .client
            .post(self.absolute(path))
            .form(fields)
            .send()
            .await
            .expect("POST");
        read(response).await
    }
}

async fn read(response: reqwest::Response) -> Page {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    Page {
        status,
        headers,
        body,
    }
}
