//! Teaching the face generator (the Faces DCGAN) a folder of the user's pictures.
